package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/tungate/tungate/control"
)

// cmdRules prints the running policy's per-rule counters, in file order
// with the default policy last.
func cmdRules(ctx context.Context, args []string, out io.Writer) error {
	cf, err := parseNoArgs("rules", args, true)
	if err != nil {
		return err
	}
	var rules []control.Rule
	if err := cf.client().Call(ctx, control.OpRules, nil, &rules); err != nil {
		return remoteFailure("rules", err)
	}
	if cf.json {
		if rules == nil {
			rules = []control.Rule{}
		}
		return printJSON(out, rules)
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "RULE\tFLOWS\tPACKETS\tBYTES\t\tLAST HIT\t")
	now := time.Now()
	for _, r := range rules {
		last := "never"
		if r.LastHit != nil {
			last = fmt.Sprintf("%s (%s ago)", r.LastHit.Format(time.RFC3339), now.Sub(*r.LastHit).Truncate(time.Second))
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t\t%s\t\n", r.Name, r.Flows, r.Packets, r.Bytes, last)
	}
	return tw.Flush()
}
