package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/tungate/tungate/bench"
	"github.com/tungate/tungate/internal/lab"
)

// cmdProfile runs tungate with TUNGATE_CPUPROFILE under TCP and UDP bulk
// load and leaves the profile at -o; `make profile` prints its top.
func cmdProfile(ctx context.Context, args []string) (err error) {
	fs := flag.NewFlagSet("profile", flag.ContinueOnError)
	var o runOpts
	fs.StringVar(&o.binary, "bin", "bin/tungate", "tungate binary")
	fs.StringVar(&o.config, "config", "configs/bench.toml", "tungate config")
	out := fs.String("o", "bench/results/cpu.pprof", "profile output")
	fs.DurationVar(&o.d, "d", 5*time.Second, "duration per load phase")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := preflight(&o); err != nil {
		return err
	}
	cfgText, err := os.ReadFile(o.config)
	if err != nil {
		return err
	}
	path, err := filepath.Abs(*out)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	os.Remove(path)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute+6*o.d)
	defer cancel()

	l, err := lab.New(ctx, lab.Options{Prefix: "tgb", Log: slog.New(slog.DiscardHandler), GatewayOutput: io.Discard})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := l.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()
	srv, err := startBG(ctx, l.Server, "ready", o.self, "serve", "-addr", lab.ServerV4.String())
	if err != nil {
		return err
	}
	defer srv.stop()
	ip3, err := startBG(ctx, l.Server, "", "iperf3", "-s", "-B", lab.ServerV4.String(), "-p", fmt.Sprint(bench.PortIperf))
	if err != nil {
		return err
	}
	defer ip3.stop()

	// The gateway inherits the environment through `ip netns exec`.
	os.Setenv("TUNGATE_CPUPROFILE", path)
	gw, err := setupTungate(ctx, l, o.binary, string(cfgText))
	os.Unsetenv("TUNGATE_CPUPROFILE")
	if err != nil {
		return err
	}
	stopped := false
	defer func() {
		if !stopped {
			gw.stop()
		}
	}()
	if _, err := agent(ctx, o.self, l.Client, 20*time.Second, "probe", "-addr", lab.ServerV4.String()); err != nil {
		return err
	}
	e := &env{lab: l, self: o.self, d: o.d, gw: gw,
		note: func(format string, a ...any) { fmt.Fprintf(os.Stderr, "note: "+format+"\n", a...) }}
	for _, phase := range [][]string{{"-P", "1"}, {"-P", "4"}, {"-P", "4", "-R"}, {"-u", "-b", "0", "-l", "1400"}} {
		r, err := iperf(ctx, e, phase...)
		if err != nil {
			return fmt.Errorf("iperf3 %v: %w", phase, err)
		}
		fmt.Fprintf(os.Stderr, "load %v: %.2f Gbit/s\n", phase, r.BitsPerSecond/1e9)
	}
	stopped = true
	if err := gw.stop(); err != nil {
		return fmt.Errorf("stop tungate: %w", err)
	}
	if st, err := os.Stat(path); err != nil || st.Size() == 0 {
		return fmt.Errorf("no CPU profile at %s: does cmd/tungate/main.go call startProfileFromEnv?", path)
	}
	fmt.Println(path)
	return nil
}
