// Command tgbench is tungate's benchmark harness (`make bench`). It builds
// its own client/gateway/server namespaces and measures, side by side, plain
// kernel forwarding, nftables with an equivalent stateful ruleset, tungate
// on configs/bench.toml and, optionally, a PEER gateway command.
//
//	tgbench run [-quick] [-peer CMD] ...   the comparison; prints a table, writes JSON
//	tgbench profile -o FILE ...            tungate under bulk load with TUNGATE_CPUPROFILE
//
// The other subcommands are the load generators and servers; tgbench runs
// them inside the namespaces through `ip netns exec`, so each is a whole
// process living in one namespace.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage:
  tgbench run [flags]       compare kernel, nftables, tungate (and PEER); see tgbench run -h
  tgbench profile [flags]   CPU profile of tungate under bulk load; see tgbench profile -h
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	args := os.Args[2:]
	var err error
	switch os.Args[1] {
	case "run":
		err = cmdRun(ctx, args)
	case "profile":
		err = cmdProfile(ctx, args)
	case "serve":
		err = agentServe(ctx, args)
	case "connrate":
		err = agentConnRate(ctx, args)
	case "pingpong":
		err = agentPingPong(ctx, args)
	case "idle":
		err = agentIdle(ctx, args)
	case "probe":
		err = agentProbe(ctx, args)
	default:
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tgbench:", err)
		os.Exit(1)
	}
}
