package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/tungate/tungate/internal/units"

	"github.com/tungate/tungate/control"
)

const conntrackUsage = `usage:
  tungate conntrack [-s SOCK] [--json] [-v] [FILTER]   list flows, one per line like conntrack -L
                                                       (-v: with each TCP direction's window state)
  tungate conntrack [-s SOCK] [--json] --stats         print the table's counters
  tungate conntrack [-s SOCK] flush [FILTER]           delete every flow (FILTER: the flows it selects)
  tungate conntrack [-s SOCK] delete --proto tcp --src IP:PORT --dst IP:PORT
                                                       delete one flow, given either direction
  tungate conntrack [-s SOCK] [--json] events [--count N] [--for D] [FILTER]
                                                       follow flow events as they happen, like conntrack -E
                                                       (until interrupted, N events or D elapsed)
FILTER (every option given must match; addresses and ports of the original direction):
  --proto tcp|udp|icmp|icmpv6   --src IP|IP/PREFIX|IP:PORT   --dst IP|IP/PREFIX|IP:PORT
  --state TCP_STATE             --rule NAME
`

// cmdConntrack lists, counts or deletes the running gateway's flows.
func cmdConntrack(ctx context.Context, args []string, out, errOut io.Writer) error {
	fs := flag.NewFlagSet("conntrack", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	stats := fs.Bool("stats", false, "print the table's counters instead of the flows")
	verbose := fs.Bool("v", false, "list: add each TCP direction's window state (the JSON listing always has it)")
	count := fs.Int("count", 0, "events: stop after this many events (0: no limit)")
	var follow units.Duration
	fs.Var(&follow, "for", "events: stop after this long, e.g. 30s (0: until interrupted)")
	proto := fs.String("proto", "", "tcp, udp, icmp or icmpv6")
	src := fs.String("src", "", "delete: source IP:PORT (ICMP: IP:ECHO-ID); list, flush: IP, IP/PREFIX or IP:PORT")
	dst := fs.String("dst", "", "delete: destination IP:PORT (ICMP: IP); list, flush: IP, IP/PREFIX or IP:PORT")
	state := fs.String("state", "", "list, flush: TCP state (ESTABLISHED, SYN_SENT, ...)")
	rule := fs.String("rule", "", "list, flush: the deciding rule's name (default: defaults.policy)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	usageErr := func(msg string) error {
		return &exitError{2, fmt.Errorf("tungate conntrack: %s\n%s", msg, conntrackUsage)}
	}
	sub := "list"
	if len(pos) > 0 {
		sub = pos[0]
	}
	if len(pos) > 1 {
		return usageErr(fmt.Sprintf("unexpected argument %q", pos[1]))
	}
	filter := control.FlowFilter{Proto: *proto, Src: *src, Dst: *dst, State: *state, Rule: *rule}
	filtered := filter != control.FlowFilter{}
	if sub == "delete" && (*state != "" || *rule != "") {
		return usageErr("delete takes --proto, --src and --dst only")
	}
	if sub != "list" && (*stats || *verbose) {
		return usageErr("--stats and -v go with the listing")
	}
	if sub != "events" && (*count != 0 || follow != 0) {
		return usageErr("--count and --for go with events")
	}
	if *count < 0 || follow < 0 {
		return usageErr("--count and --for must not be negative")
	}
	if *stats && filtered {
		return usageErr("--stats counts the whole table; it takes no filter")
	}
	if sub != "delete" {
		if err := filter.Check(); err != nil { // say so without bothering the gateway
			return usageErr(err.Error())
		}
	}
	c := cf.client()
	if filtered || sub == "events" {
		// Filters and events came with protocol version 2: a gateway that
		// predates them refuses the request instead of ignoring the filter.
		c.V = control.Version
	}
	switch sub {
	case "list":
		if *stats {
			var st control.Stats
			if err := c.Call(ctx, control.OpConntrackStats, nil, &st); err != nil {
				return remoteFailure("conntrack", err)
			}
			if cf.json {
				return printJSON(out, st)
			}
			_, err := fmt.Fprintln(out, st)
			return err
		}
		return listFlows(ctx, c, filter, cf.json, *verbose, out, errOut)
	case "flush":
		var res control.Flushed
		if err := c.Call(ctx, control.OpConntrackFlush, filter, &res); err != nil {
			return remoteFailure("conntrack flush", err)
		}
		fmt.Fprintf(errOut, "tungate: %d flow entries have been deleted.\n", res.Deleted)
		return nil
	case "events":
		if follow > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, follow.D())
			defer cancel()
		}
		return followEvents(ctx, c, filter, cf.json, *count, out, errOut)
	case "delete":
		if *proto == "" || *src == "" || *dst == "" {
			return usageErr("delete needs --proto, --src and --dst")
		}
		a := control.DeleteArgs{Proto: *proto, Src: *src, Dst: *dst}
		if _, err := a.Key(); err != nil { // say so without bothering the gateway
			return usageErr(err.Error())
		}
		if err := c.Call(ctx, control.OpConntrackDelete, a, nil); err != nil {
			return remoteFailure("conntrack delete", err)
		}
		fmt.Fprintln(errOut, "tungate: 1 flow entry has been deleted.")
		return nil
	}
	return usageErr(fmt.Sprintf("unknown subcommand %q", sub))
}

// listFlows streams the listing: one line (or array element) per flow as
// it arrives, so a full table is never held in memory.
func listFlows(ctx context.Context, c control.Client, filter control.FlowFilter, asJSON, verbose bool, out, errOut io.Writer) error {
	w := bufio.NewWriter(out)
	n := 0
	if asJSON {
		w.WriteString("[")
	}
	var line []byte
	err := c.Stream(ctx, control.OpConntrackList, filter, func(dec *json.Decoder) error {
		var f control.Flow
		if err := dec.Decode(&f); err != nil {
			return fmt.Errorf("bad flow: %w", err)
		}
		if asJSON {
			b, err := json.Marshal(f)
			if err != nil {
				return err
			}
			if n > 0 {
				w.WriteString(",")
			}
			w.WriteString("\n  ")
			w.Write(b)
		} else {
			if verbose {
				line = f.AppendTextVerbose(line[:0])
			} else {
				line = f.AppendText(line[:0])
			}
			line = append(line, '\n')
			w.Write(line)
		}
		n++
		return nil
	})
	if err != nil {
		w.Flush()
		return remoteFailure("conntrack", err)
	}
	if asJSON {
		if n > 0 {
			w.WriteString("\n")
		}
		w.WriteString("]\n")
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if !asJSON {
		fmt.Fprintf(errOut, "tungate: %d flow entries have been shown.\n", n)
	}
	return nil
}

// printJSON writes v indented, with a final newline.
func printJSON(out io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = out.Write(append(b, '\n'))
	return err
}

// errEnough ends a feed once --count events have come.
var errEnough = errors.New("enough events")

// followEvents prints flow events as they come, one line (or one JSON
// object per line) each, flushed at once, until ctx ends, count events
// were printed, or the gateway ends the feed. Missed events are reported
// on errOut.
func followEvents(ctx context.Context, c control.Client, filter control.FlowFilter, asJSON bool, count int, out, errOut io.Writer) error {
	n := 0
	var line []byte
	err := c.Follow(ctx, control.OpConntrackEvents, filter, func(dec *json.Decoder) error {
		var ev control.FlowEvent
		if err := dec.Decode(&ev); err != nil {
			return fmt.Errorf("bad event: %w", err)
		}
		if ev.Missed > 0 {
			fmt.Fprintf(errOut, "tungate: %d events missed (the feed fell behind)\n", ev.Missed)
		}
		if asJSON {
			b, err := json.Marshal(ev)
			if err != nil {
				return err
			}
			line = append(append(line[:0], b...), '\n')
		} else {
			line = append(ev.AppendText(line[:0]), '\n')
		}
		if _, err := out.Write(line); err != nil {
			return err
		}
		if n++; count > 0 && n >= count {
			return errEnough
		}
		return nil
	})
	if errors.Is(err, errEnough) || ctx.Err() != nil {
		fmt.Fprintf(errOut, "tungate: %d flow events have been shown.\n", n)
		return nil
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		// The gateway stopped: it closes feeds without finishing them.
		return &exitError{1, fmt.Errorf("tungate conntrack events: the gateway closed the feed after %d flow events", n)}
	}
	if err != nil {
		return remoteFailure("conntrack events", err)
	}
	return nil
}
