// Package demo is `tungate demo`: it builds a lab (internal/lab), runs the
// real gateway binary in it on configs/demo.toml, drives one probe per rule
// from the client namespace, prints what was allowed and what was blocked,
// and tears everything down. End-to-end tests reuse its checks row by row.
package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/tungate/tungate/configs"
	"github.com/tungate/tungate/internal/lab"
)

// Options configure Run. Only Binary is required.
type Options struct {
	// Binary is the tungate executable the gateway namespace runs.
	Binary string
	// Out receives the table and the gateway's decisions; nil discards.
	Out io.Writer
	// Log receives progress at info level and lab steps at debug; nil
	// discards.
	Log *slog.Logger
	// Config is the gateway's TOML; nil means configs.Demo. The scenario's
	// expectations are written for configs.Demo.
	Config []byte
	// GatewayOutput receives a live copy of the gateway's log lines; nil
	// for none.
	GatewayOutput io.Writer
}

// stopTimeout bounds the gateway's clean shutdown at the end.
const stopTimeout = 5 * time.Second

// Run is the whole demo. It returns an error when the lab or gateway cannot
// be set up, when any row differs from what the config should produce, or
// when ctx ends; teardown happens in every case.
func Run(ctx context.Context, opts Options) (err error) {
	if opts.Binary == "" {
		return errors.New("demo: no tungate binary given")
	}
	if os.Geteuid() != 0 {
		return errors.New("demo: needs root: it creates network namespaces and a TUN device (all removed afterwards)")
	}
	out := opts.Out
	if out == nil {
		out = io.Discard
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg := opts.Config
	if cfg == nil {
		cfg = configs.Demo
	}

	start := time.Now()
	l, err := lab.New(ctx, lab.Options{Log: log, GatewayOutput: opts.GatewayOutput})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer func() {
		if cerr := l.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("demo: teardown: %w", cerr))
		}
	}()
	log.Info("lab up", "client", l.Client.Name, "gateway", l.Gateway.Name, "server", l.Server.Name)
	fmt.Fprintf(out, "lab: client %s (%s) -> gateway %s -> server %s (%s)\n",
		l.Client.Name, lab.ClientV4, l.Gateway.Name, l.Server.Name, lab.ServerV4)

	gw, err := l.StartGateway(ctx, opts.Binary, string(withSocket(cfg, l.Suffix)))
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer func() {
		if serr := gw.Stop(stopTimeout); serr != nil {
			err = errors.Join(err, fmt.Errorf("demo: gateway shutdown: %w\n%s", serr, tail(gw.Logs(), 20)))
		}
	}()
	log.Info("gateway ready", "pid", gw.Process().Pid)
	fmt.Fprintf(out, "gateway: %s run -c demo.toml (pid %d)\n\n", opts.Binary, gw.Process().Pid)

	rows := RunScenario(ctx, l)
	WriteTable(out, rows)
	fmt.Fprintln(out)
	WriteDecisions(out, gw.Logs())
	if ctx.Err() != nil {
		fmt.Fprintf(out, "\ninterrupted after %d of %d checks; tearing down\n", len(rows), len(Checks()))
		return ctx.Err()
	}
	fmt.Fprintf(out, "\n%d of %d checks as expected in %v\n", len(rows)-Failed(rows), len(rows), time.Since(start).Round(100*time.Millisecond))

	if n := Failed(rows); n > 0 {
		return fmt.Errorf("demo: %d of %d checks differ from what demo.toml should produce; gateway log tail:\n%s", n, len(rows), tail(gw.Logs(), 30))
	}
	return nil
}

// demoSocket is the control socket path in configs/demo.toml; each run
// gets its own so demos and tests can overlap.
const demoSocket = "/run/tungate-demo.sock"

func withSocket(cfg []byte, suffix string) []byte {
	return bytes.ReplaceAll(cfg, []byte(`"`+demoSocket+`"`), []byte(`"/run/tungate-demo-`+suffix+`.sock"`))
}

func tail(lines []string, n int) string {
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	var b bytes.Buffer
	for _, l := range lines {
		b.WriteString("  ")
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}
