package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/tungate/tungate/internal/config"
)

// cmdCheck validates and compiles a config file. Errors are printed one per
// line as FILE:LINE:COL: message, and the exit status is 1.
func cmdCheck(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	path := fs.String("c", "", "config file")
	if err := fs.Parse(args); err != nil {
		return &exitError{2, err}
	}
	if *path == "" {
		return &exitError{2, fmt.Errorf("tungate check: -c FILE is required")}
	}
	f, err := config.Load(*path)
	if err != nil {
		return &exitError{1, err}
	}
	fmt.Fprintf(out, "%s: ok (%d rules, %d sets)\n", *path, len(f.Policy.Rules), len(f.Policy.Sets))
	return nil
}
