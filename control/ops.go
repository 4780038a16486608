package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync/atomic"

	"github.com/tungate/tungate/conntrack"
	"github.com/tungate/tungate/policy"
)

// Backend is what a running gateway exposes to the control socket. Policy
// is called per request, so a reload is seen by the next one.
type Backend interface {
	Conntrack() *conntrack.Table
	Policy() *policy.Policy
	// Reload re-reads the config; it must be the same path SIGHUP takes.
	// Its error text (FILE:LINE:COL lines) reaches the operator verbatim.
	Reload() error
}

// L7Source is implemented by backends that record, per flow, the fields
// payload inspection read (the TLS SNI, HTTP Host, DNS query name); the
// flow listing then shows them.
type L7Source interface {
	FlowL7(orig conntrack.Key) (L7, bool)
}

// FragmentSource is implemented by backends that reassemble IP
// fragments; the table's statistics then carry reassembly's too.
type FragmentSource interface {
	Fragments() Fragments
}

// L7 is what inspection read on one flow; empty fields were not read.
type L7 struct {
	SNI, HTTPHost, DNSQName string
}

// Pong answers OpPing.
type Pong struct {
	PID   int `json:"pid"`
	Flows int `json:"flows"`
}

// Flushed answers OpConntrackFlush and OpConntrackDelete.
type Flushed struct {
	Deleted int `json:"deleted"`
}

// DeleteArgs select one flow by its tuple in either direction.
type DeleteArgs struct {
	Proto string `json:"proto"` // tcp, udp, icmp, icmpv6
	Src   string `json:"src"`   // IP:PORT (for ICMP, IP:ECHO-ID or IP)
	Dst   string `json:"dst"`   // IP:PORT (for ICMP, IP)
}

// ErrNoFlow is the refusal of a delete that matched nothing.
var ErrNoFlow = errors.New("no such flow")

// Ops returns the gateway's operations over b.
func Ops(b Backend) Mux {
	var feeds atomic.Int32
	return Mux{
		OpConntrackEvents: eventFeed(b, &feeds),
		OpPing: func(context.Context, json.RawMessage) (any, error) {
			return Pong{PID: os.Getpid(), Flows: b.Conntrack().Len()}, nil
		},
		OpConntrackList: func(ctx context.Context, raw json.RawMessage) (any, error) {
			m, err := decodeFilter(raw)
			if err != nil {
				return nil, err
			}
			t, p := b.Conntrack(), b.Policy()
			return Stream(func(emit func(any) error) error {
				var err error
				t.Range(func(fi conntrack.FlowInfo) bool {
					if err = ctx.Err(); err != nil {
						return false
					}
					f := FlowFrom(fi, p)
					if !m.matches(&f) {
						return true
					}
					if ls, ok := b.(L7Source); ok {
						if l, ok := ls.FlowL7(fi.Orig); ok {
							f.SNI, f.HTTPHost, f.DNSQName = l.SNI, l.HTTPHost, l.DNSQName
						}
					}
					err = emit(f)
					return err == nil
				})
				return err
			}), nil
		},
		OpConntrackStats: func(context.Context, json.RawMessage) (any, error) {
			t := b.Conntrack()
			st := StatsFrom(t.Stats(), t.Len())
			if fs, ok := b.(FragmentSource); ok {
				f := fs.Fragments()
				st.Fragments = &f
			}
			return st, nil
		},
		OpConntrackFlush: func(ctx context.Context, raw json.RawMessage) (any, error) {
			m, err := decodeFilter(raw)
			if err != nil {
				return nil, err
			}
			return Flushed{Deleted: flush(ctx, b.Conntrack(), b.Policy(), &m)}, ctx.Err()
		},
		OpConntrackDelete: func(_ context.Context, raw json.RawMessage) (any, error) {
			var a DeleteArgs
			if err := json.Unmarshal(raw, &a); err != nil {
				return nil, fmt.Errorf("bad arguments: %w", err)
			}
			k, err := a.Key()
			if err != nil {
				return nil, err
			}
			if !b.Conntrack().Delete(k) {
				return nil, ErrNoFlow
			}
			return Flushed{Deleted: 1}, nil
		},
		OpRules: func(context.Context, json.RawMessage) (any, error) {
			cs := b.Policy().Counters()
			out := make([]Rule, len(cs))
			for i, c := range cs {
				out[i] = RuleFrom(c)
			}
			return out, nil
		},
		OpReload: func(context.Context, json.RawMessage) (any, error) {
			if err := b.Reload(); err != nil {
				return nil, err
			}
			return struct{}{}, nil
		},
		OpSetAdd:  setAdd(b),
		OpSetDel:  setDel(b),
		OpSetList: setList(b),
	}
}

// flush deletes every flow m selects (the table has no bulk delete; Range
// allows calling the table from its callback). Flows created meanwhile may
// stay.
func flush(ctx context.Context, t *conntrack.Table, p *policy.Policy, m *flowMatch) int {
	n := 0
	t.Range(func(fi conntrack.FlowInfo) bool {
		if f := FlowFrom(fi, p); m.matches(&f) && t.Delete(fi.Orig) {
			n++
		}
		return ctx.Err() == nil
	})
	return n
}
