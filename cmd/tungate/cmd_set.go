package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/tungate/tungate/internal/units"

	"github.com/tungate/tungate/control"
)

const setUsage = `usage:
  tungate set add NAME ADDR [--timeout D] [-s SOCK]   put ADDR in dynamic set NAME (D: the set's timeout)
  tungate set del NAME ADDR [-s SOCK]                 take ADDR out of dynamic set NAME
  tungate set list NAME [-s SOCK] [--json]            list a set; dynamic elements with their time left
`

// cmdSet changes and lists the running policy's sets: add and del act on
// dynamic sets (bans without a reload), list shows any set.
func cmdSet(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("set", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	var timeout units.Duration
	fs.Var(&timeout, "timeout", "add: how long the element stays, e.g. 10m (default: the set's timeout)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	usageErr := func(msg string) error {
		return &exitError{2, fmt.Errorf("tungate set: %s\n%s", msg, setUsage)}
	}
	if len(pos) == 0 {
		return usageErr("missing subcommand")
	}
	want := map[string]int{"add": 3, "del": 3, "list": 2}
	n, ok := want[pos[0]]
	switch {
	case !ok:
		return usageErr(fmt.Sprintf("unknown subcommand %q", pos[0]))
	case len(pos) < n:
		return usageErr("missing argument")
	case len(pos) > n:
		return usageErr(fmt.Sprintf("unexpected argument %q", pos[n]))
	case timeout < 0, timeout != 0 && pos[0] != "add":
		return usageErr("--timeout is a positive duration and goes with add")
	}
	a := control.SetArgs{Name: pos[1]}
	if n == 3 {
		a.Elem = pos[2]
	}
	if timeout > 0 {
		a.Timeout = timeout.String()
	}
	c := cf.client()
	switch pos[0] {
	case "add", "del":
		op := control.OpSetAdd
		if pos[0] == "del" {
			op = control.OpSetDel
		}
		if err := c.Call(ctx, op, a, nil); err != nil {
			return remoteFailure("set "+pos[0], err)
		}
		return nil
	}
	var es []control.SetElem
	err = c.Stream(ctx, control.OpSetList, a, func(dec *json.Decoder) error {
		var e control.SetElem
		if err := dec.Decode(&e); err != nil {
			return err
		}
		es = append(es, e)
		return nil
	})
	if err != nil {
		return remoteFailure("set list", err)
	}
	if cf.json {
		if es == nil {
			es = []control.SetElem{}
		}
		return printJSON(out, es)
	}
	for _, e := range es {
		if _, err := fmt.Fprintln(out, e.Text()); err != nil {
			return err
		}
	}
	return nil
}
