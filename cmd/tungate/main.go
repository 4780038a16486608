// Command tungate is a transparent filtering gateway that runs in user
// space: forwarded traffic is steered into a TUN device, tracked, filtered
// by a TOML policy and relayed through the egress interface.
//
// main stays thin: it picks the subcommand, sets up signal handling and
// turns errors into an exit status. The subcommands live in their own files.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// exitError carries a specific exit status (check exits 1 on a bad config).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

const usage = `tungate: a user-space transparent filtering gateway

usage:
  tungate run -c FILE        run the gateway in the foreground (SIGHUP reloads, SIGINT/SIGTERM stop)
  tungate check -c FILE      validate and compile a config; errors as FILE:LINE:COL: message
  tungate explain -c FILE --proto P --src IP:PORT --dst IP:PORT [--sni NAME] [--http-host H] [--http-method M]
                 [--http-path P] [--dns-qname N] [--payload TEXT] [--icmp-type T] [--ct-state S] [--src-conns N]
                             which rule decides a flow, and why each earlier rule did not
  tungate demo               run the gateway in a throw-away namespace lab and show what it does
  tungate conntrack [-s SOCK] [--json] [-v] [--stats] [--proto P] [--src A] [--dst A] [--state S] [--rule R]
                             list the running gateway's flows (also: flush [filters], delete --proto P --src IP:PORT --dst IP:PORT,
                             events [--count N] [--for D] [filters]: follow them live)
  tungate rules [-s SOCK] [--json]
                             per-rule counters of the running gateway
  tungate set add|del NAME ADDR [--timeout D] [-s SOCK] | set list NAME [-s SOCK] [--json]
                             change a dynamic set of the running policy (bans without a reload), list a set
  tungate reload [-s SOCK]   reload the running gateway's config (as SIGHUP); refusals as FILE:LINE:COL
  tungate cleanup -c FILE    remove the steering a stopped gateway leaves in place (it refuses steered
                             traffic until tungate runs again); refuses while a gateway runs
  tungate version            print the version
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	stopProfile := startProfileFromEnv() // TUNGATE_CPUPROFILE=path; written on a clean exit
	defer stopProfile()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var err error
	args := os.Args[2:]
	switch os.Args[1] {
	case "run":
		err = cmdRun(ctx, args)
	case "check":
		err = cmdCheck(args, os.Stdout)
	case "explain":
		err = cmdExplain(args, os.Stdout)
	case "demo":
		err = cmdDemo(ctx, args)
	case "conntrack":
		err = cmdConntrack(ctx, args, os.Stdout, os.Stderr)
	case "rules":
		err = cmdRules(ctx, args, os.Stdout)
	case "set":
		err = cmdSet(ctx, args, os.Stdout)
	case "reload":
		err = cmdReload(ctx, args, os.Stdout)
	case "cleanup":
		err = cmdCleanup(args, os.Stdout)
	case "version", "--version", "-v":
		fmt.Println("tungate", version)
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "tungate: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		var ee *exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		os.Exit(1)
	}
}
