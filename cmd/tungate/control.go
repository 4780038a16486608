package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/tungate/tungate/conntrack"
	"github.com/tungate/tungate/control"
	"github.com/tungate/tungate/internal/config"
	"github.com/tungate/tungate/policy"
	"github.com/tungate/tungate/stack/reassembly"
)

// controlBackend is what the control socket sees of a running gateway.
type controlBackend struct{ g *gateway }

func (b controlBackend) Conntrack() *conntrack.Table { return b.g.data.Conntrack() }
func (b controlBackend) Policy() *policy.Policy      { return b.g.data.Policy() }
func (b controlBackend) Reload() error               { return b.g.applyReload("control socket") }

// FlowL7 makes the flow listing show what inspection read (control.L7Source).
func (b controlBackend) FlowL7(k conntrack.Key) (control.L7, bool) {
	i, ok := b.g.data.FlowL7(k)
	return control.L7{SNI: i.SNI, HTTPHost: i.HTTPHost, DNSQName: i.DNSQName}, ok
}

// Fragments makes the table's statistics carry reassembly's
// (control.FragmentSource).
func (b controlBackend) Fragments() control.Fragments {
	st := b.g.data.Fragments()
	f := control.Fragments{
		Fragments: st.Fragments, Reassembled: st.Reassembled, Atomic: st.Atomic,
		Held: st.FragmentsHeld, Datagrams: st.DatagramsHeld, Memory: st.MemoryInUse,
		Dropped: make(map[string]uint64),
	}
	for r, n := range st.FragmentsDropped {
		if n != 0 {
			f.Dropped[reassembly.Reason(r).String()] = n
		}
	}
	return f
}

// serveControl answers the control socket until ctx ends; the listener was
// opened by startGateway before anything else, so a second gateway on the
// same socket is refused before it touches the TUN or the routes.
func (g *gateway) serveControl(ctx context.Context) {
	if err := g.ctl.Serve(ctx, control.Ops(controlBackend{g})); err != nil {
		g.log.Error("control socket stopped", "err", err.Error())
	}
}

// clientFlags are the flags every operator subcommand shares.
type clientFlags struct {
	socket string
	json   bool
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	c.registerSocket(fs)
	fs.BoolVar(&c.json, "json", false, "print JSON instead of text")
}

func (c *clientFlags) registerSocket(fs *flag.FlagSet) {
	fs.StringVar(&c.socket, "s", config.DefaultSocket, "the gateway's control socket ([control] socket)")
}

func (c *clientFlags) client() control.Client { return control.Client{Path: c.socket} }

// parseNoArgs is the whole command line of a subcommand that takes only
// the client flags (--json too when withJSON) and no positional arguments.
func parseNoArgs(name string, args []string, withJSON bool) (clientFlags, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	var cf clientFlags
	if withJSON {
		cf.register(fs)
	} else {
		cf.registerSocket(fs)
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return cf, err
	}
	if len(pos) > 0 {
		return cf, &exitError{2, fmt.Errorf("tungate %s: unexpected argument %q", name, pos[0])}
	}
	return cf, nil
}

// parseInterleaved parses flags that may come before and after positional
// arguments (`tungate conntrack -s S delete --proto tcp …`), which the flag
// package alone stops at.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, &exitError{0, fmt.Errorf("%s", flagUsage(fs))}
			}
			return nil, &exitError{2, fmt.Errorf("tungate %s: %w\n%s", fs.Name(), err, flagUsage(fs))}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func flagUsage(fs *flag.FlagSet) string {
	var b []byte
	fs.VisitAll(func(f *flag.Flag) {
		name := "-" + f.Name
		if len(f.Name) > 1 {
			name = "--" + f.Name
		}
		b = fmt.Appendf(b, "  %-8s %s", name, f.Usage)
		if f.DefValue != "" && f.DefValue != "false" {
			b = fmt.Appendf(b, " (default %s)", f.DefValue)
		}
		b = append(b, '\n')
	})
	return "flags:\n" + string(b)
}

// remoteFailure turns a refusal by the gateway into exit status 1 with its
// message, and a failure to reach it into status 1 as well.
func remoteFailure(what string, err error) error {
	var re *control.RemoteError
	if errors.As(err, &re) {
		return &exitError{1, fmt.Errorf("tungate %s: %s", what, re.Msg)}
	}
	return &exitError{1, fmt.Errorf("tungate %s: %w", what, err)}
}
