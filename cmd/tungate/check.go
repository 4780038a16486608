package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/tungate/tungate/internal/config"
)

// cmdCheck validates and compiles a config file. Errors are printed one per
// line as FILE:LINE:COL: message, and the exit status is 1. A valid file
// gets a summary of what it compiled to, and a warning per rule that an
// earlier rule shadows (warnings do not fail the check).
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
	p := f.Compiled
	s := p.Summary()
	fmt.Fprintf(out, "%s: ok (%d rules, %d sets)\n", *path, s.Rules, len(s.Sets))
	for _, st := range s.Sets {
		if st.Dynamic {
			fmt.Fprintf(out, "  set %-20s %-6s dynamic, up to %d elements\n", st.Name, st.Type, st.Size)
		} else {
			fmt.Fprintf(out, "  set %-20s %-6s %d elements\n", st.Name, st.Type, st.Size)
		}
	}
	list := func(what string, names []string) {
		if len(names) > 0 {
			fmt.Fprintf(out, "  %s: %s\n", what, strings.Join(names, ", "))
		}
	}
	list("rules needing payload", s.PayloadRules)
	list("rules waiting for an L7 field", s.L7Rules)
	list("audit-mode rules", s.AuditRules)
	list("rules with a limit", s.Limits)
	for _, sh := range p.Shadowed() {
		fmt.Fprintf(out, "warning: %s\n", sh)
	}
	return nil
}
