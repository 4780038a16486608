package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/tungate/tungate/control"
	"github.com/tungate/tungate/internal/config"
	"github.com/tungate/tungate/tun"
)

// cmdCleanup removes the steering a stopped (or crashed) gateway left in
// place, for an uninstall or to hand routing back to the kernel: tungate
// keeps its rules and the table's unreachable default when it stops, so
// that nothing is forwarded unfiltered while it is not running. It refuses
// while a gateway still answers on the control socket.
func cmdCleanup(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("cleanup", flag.ContinueOnError)
	path := fs.String("c", "", "config file (its [routing] table and priority, and [control] socket)")
	if err := fs.Parse(args); err != nil {
		return &exitError{2, err}
	}
	if *path == "" {
		return &exitError{2, fmt.Errorf("tungate cleanup: -c FILE is required")}
	}
	f, err := config.Load(*path)
	if err != nil {
		return &exitError{1, err}
	}
	if control.Running(f.Control.Socket) {
		return &exitError{1, fmt.Errorf("tungate cleanup: a gateway is running on %s; stop it first", f.Control.Socket)}
	}
	n, err := tun.RemoveSteering(f.Routing, nil)
	if err != nil {
		return &exitError{1, fmt.Errorf("tungate cleanup: %w", err)}
	}
	fmt.Fprintf(out, "tungate cleanup: removed %d rules and routes (table %d, priority %d)\n", n, f.Routing.Table, f.Routing.Priority)
	return nil
}
