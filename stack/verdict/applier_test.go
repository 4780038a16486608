package verdict

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tungate/tungate/conntrack"
	"github.com/tungate/tungate/policy"
	"github.com/tungate/tungate/stack/decisionlog"
	"github.com/tungate/tungate/stack/packet"
)

// rig is an Applier over a real conntrack table whose OnDestroy keeps the
// records, with the decision lines captured.
type rig struct {
	a   *Applier
	ct  *conntrack.Table
	pol *policy.Policy
	mu  sync.Mutex // guards out
	out bytes.Buffer
}

func (r *rig) Write(b []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.out.Write(b)
}

// lines returns the decision lines written so far, decoded.
func (r *rig) lines(t *testing.T) []map[string]any {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(r.out.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if m["msg"] == "decision" {
			out = append(out, m)
		}
	}
	return out
}

func newRig(t *testing.T, cfg policy.Config) *rig {
	t.Helper()
	if cfg.Log.Decisions == "" {
		cfg.Log = policy.LogConfig{Decisions: "all", Rate: "10000/s"}
	}
	pol, err := policy.Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{pol: pol}
	flows := NewFlows()
	r.ct = conntrack.New(conntrack.Config{}, conntrack.Options{OnDestroy: flows.Forget})
	log := slog.New(slog.NewJSONHandler(r, nil))
	r.a = New(Options{Conntrack: r.ct, Flows: flows, Decisions: decisionlog.New(log, nil), Log: log})
	r.a.SetPolicy(pol)
	return r
}

// first decides and applies the first packet of a flow from src to dst.
func (r *rig) first(t *testing.T, proto uint8, src, dst string) (conntrack.Key, policy.Verdict, Outcome) {
	t.Helper()
	k := conntrack.KeyFrom(proto, netip.MustParseAddrPort(src), netip.MustParseAddrPort(dst))
	pkt := conntrack.Packet{Key: k, Len: 60}
	if proto == packet.ProtoTCP {
		pkt.TCPFlags = packet.TCPSyn
	}
	if st := r.ct.Track(&pkt).State; st != conntrack.StateNew {
		t.Fatalf("first packet of %v: state %v, want new", k, st)
	}
	f := policy.Flow{Proto: proto, Src: k.SrcAddr(), Dst: k.DstAddr(), SrcPort: k.SrcPort, DstPort: k.DstPort}
	v := r.pol.Decide(&f)
	return k, v, r.a.Apply(&Decision{Stage: StageNew, Policy: r.pol, Verdict: v, Key: k, Packet: &pkt})
}

const (
	cli = "198.18.1.10:40000"
	srv = "198.18.2.1"
)

func rules(rs ...policy.RuleConfig) policy.Config {
	return policy.Config{Defaults: policy.Defaults{Policy: "drop"}, Rules: rs}
}

func TestApplyNew(t *testing.T) {
	r := newRig(t, rules(
		policy.RuleConfig{Name: "web", Proto: policy.List{"tcp"}, DstPort: policy.List{int64(80)}, Action: "allow"},
		policy.RuleConfig{Name: "no-ssh", Proto: policy.List{"tcp"}, DstPort: policy.List{int64(22)}, Action: "reject"},
		policy.RuleConfig{Name: "no-dns", Proto: policy.List{"udp"}, DstPort: policy.List{int64(53)}, Action: "reject", RejectWith: "icmp-admin-prohibited"},
	))
	tests := []struct {
		name     string
		proto    uint8
		dst      string
		want     Outcome
		tracked  bool
		rule     string
		action   string
		counters func(c *Counters) uint64
	}{
		{"allowed", packet.ProtoTCP, srv + ":80", Pass, true, "web", "allow", func(c *Counters) uint64 { return c.NewFlows.Load() }},
		{"rejected tcp", packet.ProtoTCP, srv + ":22", RejectTCP, false, "no-ssh", "reject", func(c *Counters) uint64 { return c.PolicyRejects.Load() }},
		{"admin prohibited", packet.ProtoUDP, srv + ":53", RejectAdmin, false, "no-dns", "reject", func(c *Counters) uint64 { return c.PolicyRejects.Load() }},
		{"default drop", packet.ProtoUDP, srv + ":123", Drop, false, "default", "drop", func(c *Counters) uint64 { return c.PolicyDrops.Load() }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.counters(r.a.Counters())
			k, _, got := r.first(t, tc.proto, cli, tc.dst)
			if got != tc.want {
				t.Errorf("outcome: got %v; want %v", got, tc.want)
			}
			if got := tc.counters(r.a.Counters()) - before; got != 1 {
				t.Errorf("counter grew by %d; want 1", got)
			}
			if _, found := flowIn(r.ct, k); found != tc.tracked {
				t.Errorf("tracked: got %v; want %v", found, tc.tracked)
			}
			if got := r.a.Flows().Get(k) != nil; got != tc.tracked {
				t.Errorf("record: got %v; want %v (records follow commits)", got, tc.tracked)
			}
			ls := r.lines(t)
			last := ls[len(ls)-1]
			if last["rule"] != tc.rule || last["action"] != tc.action || last["dst"] != tc.dst {
				t.Errorf("decision line %v; want rule %s action %s dst %s", last, tc.rule, tc.action, tc.dst)
			}
		})
	}
}

// flowIn reports k's flow in ct.
func flowIn(ct *conntrack.Table, k conntrack.Key) (conntrack.FlowInfo, bool) {
	var out conntrack.FlowInfo
	found := false
	ct.Range(func(fi conntrack.FlowInfo) bool {
		if fi.Orig == k {
			out, found = fi, true
			return false
		}
		return true
	})
	return out, found
}

func TestApplyRejectBudget(t *testing.T) {
	cfg := rules()
	cfg.Defaults.Policy = "reject"
	cfg.Reject.MaxRate = "1/h"
	r := newRig(t, cfg)
	var got []Outcome
	for i := range 3 {
		_, _, out := r.first(t, packet.ProtoTCP, "198.18.1.10:"+strconv.Itoa(40000+i), srv+":80")
		got = append(got, out)
	}
	if got[0] != RejectTCP || got[1] != Drop || got[2] != Drop {
		t.Errorf("outcomes %v; want one reset, then drops (burst 1)", got)
	}
	if n := r.a.Counters().RejectsLimited.Load(); n != 2 {
		t.Errorf("RejectsLimited %d; want 2", n)
	}
}

// TestApplyLaterStages follows one inspected flow through the stages after
// its first packet: the cached verdict in conntrack, the L7 record and the
// counters each stage owns.
func TestApplyLaterStages(t *testing.T) {
	r := newRig(t, rules(policy.RuleConfig{Name: "web", Proto: policy.List{"tcp"}, DstPort: policy.List{int64(80)}, Action: "allow"}))
	k, v, out := r.first(t, packet.ProtoTCP, cli, srv+":80")
	if out != Pass {
		t.Fatalf("first packet: %v", out)
	}

	// An audit hit: logged, counted, the flow goes on.
	audit := policy.Hit{Rule: 0, Action: policy.ActionDrop, Pattern: "SNOOP", Audit: true}
	r.a.Apply(&Decision{Stage: StageAudit, Policy: r.pol, Hit: &audit, Key: k})
	if n := r.a.Counters().AuditHits.Load(); n != 1 {
		t.Errorf("AuditHits %d; want 1", n)
	}
	if fi, _ := flowIn(r.ct, k); policy.Action(fi.Verdict.Action) != policy.ActionAllow {
		t.Errorf("an audit hit changed the cached verdict to %d", fi.Verdict.Action)
	}

	// A refused later HTTP request: cached verdict, recorded host, line.
	hit := policy.Hit{Rule: 0, RuleID: v.RuleID, Action: policy.ActionReject, Field: policy.FieldHTTPHost, Value: "blocked.example"}
	if out := r.a.Apply(&Decision{Stage: StageHit, Policy: r.pol, Hit: &hit, Key: k}); out != Drop {
		t.Errorf("hit outcome %v; want drop", out)
	}
	if fi, _ := flowIn(r.ct, k); policy.Action(fi.Verdict.Action) != policy.ActionReject {
		t.Errorf("cached verdict %d after the hit; want reject", fi.Verdict.Action)
	}
	if info, ok := r.a.FlowL7(k); !ok || info.HTTPHost != "blocked.example" || info.Action != "reject" {
		t.Errorf("L7 record %+v, %v; want the refused host", info, ok)
	}
	ls := r.lines(t)
	if last := ls[len(ls)-1]; last["reason"] != decisionlog.ReasonHTTPRequest || last["http_host"] != "blocked.example" {
		t.Errorf("hit line %v", last)
	}
	if n := r.a.Counters().PayloadHits.Load(); n != 1 {
		t.Errorf("PayloadHits %d; want 1", n)
	}
	// An ended flow is not rechecked.
	r.a.Flows().MarkRecheck()
	if n := r.a.Flows().PendingRechecks(); n != 0 {
		t.Errorf("%d rechecks pending for an ended flow; want 0", n)
	}
}

func TestApplyRecheckEndsRelay(t *testing.T) {
	r := newRig(t, rules(policy.RuleConfig{Name: "web", Proto: policy.List{"tcp"}, DstPort: policy.List{int64(80)}, Action: "allow"}))
	k, v, _ := r.first(t, packet.ProtoTCP, cli, srv+":80")
	fl := r.a.Flows().Get(k)
	ctx, cancel := context.WithCancel(context.Background())
	defer fl.SetRelay(cancel)()

	r.a.Flows().MarkRecheck()
	if !r.a.Flows().TakeRecheck(k) || r.a.Flows().TakeRecheck(k) {
		t.Fatal("a marked flow is rechecked exactly once")
	}
	denied := policy.Verdict{Action: policy.ActionDrop, Rule: -1, LogRule: -1}
	prior := policy.Verdict{RuleID: v.RuleID}
	if out := r.a.Apply(&Decision{Stage: StageRecheck, Policy: r.pol, Verdict: denied, Prior: &prior, Key: k}); out != Drop {
		t.Errorf("recheck outcome %v; want drop", out)
	}
	select {
	case <-ctx.Done():
	case <-time.After(time.Second):
		t.Error("the relay was not ended")
	}
	if n := r.a.Counters().RecheckTeardowns.Load(); n != 1 {
		t.Errorf("RecheckTeardowns %d; want 1", n)
	}
}

// TestFlowsFollowConntrack: a record lives exactly as long as its flow's
// entry, whichever way the entry goes, and a recheck mark goes with it.
func TestFlowsFollowConntrack(t *testing.T) {
	r := newRig(t, rules(policy.RuleConfig{Name: "all", Action: "allow"}))
	a, _, _ := r.first(t, packet.ProtoUDP, cli, srv+":53")
	b, _, _ := r.first(t, packet.ProtoUDP, "198.18.1.11:40000", srv+":53")
	if n := r.a.Flows().Len(); n != 2 {
		t.Fatalf("%d records; want 2", n)
	}
	r.a.Flows().MarkRecheck()
	if n := r.a.Flows().PendingRechecks(); n != 2 {
		t.Fatalf("%d rechecks pending; want 2", n)
	}
	if !r.ct.Delete(a.Reply()) {
		t.Fatal("Delete by the reply key failed")
	}
	if r.a.Flows().Get(a) != nil || r.a.Flows().Len() != 1 || r.a.Flows().PendingRechecks() != 1 {
		t.Errorf("after Delete: record %v, %d records, %d rechecks; want gone, 1, 1",
			r.a.Flows().Get(a) != nil, r.a.Flows().Len(), r.a.Flows().PendingRechecks())
	}
	if r.a.Flows().Get(b) == nil {
		t.Error("the other flow's record went too")
	}
}

func TestFlushEndsMatchingFlows(t *testing.T) {
	r := newRig(t, rules(policy.RuleConfig{Name: "all", Action: "allow"}))
	a, _, _ := r.first(t, packet.ProtoUDP, cli, srv+":53")
	b, _, _ := r.first(t, packet.ProtoUDP, "198.18.1.11:40000", srv+":53")
	ctx, cancel := context.WithCancel(context.Background())
	defer r.a.Flows().Get(a).SetRelay(cancel)()
	r.a.queueFlushes([]policy.AddTo{{Addr: a.SrcAddr(), IsSrc: true}})
	r.a.Flush()
	if ctx.Err() == nil {
		t.Error("the flushed flow's relay still runs")
	}
	if _, ok := flowIn(r.ct, a); ok {
		t.Error("the flushed flow is still tracked")
	}
	if _, ok := flowIn(r.ct, b); !ok {
		t.Error("the other source's flow was flushed")
	}
	if n := r.a.Counters().FlowsFlushed.Load(); n != 1 {
		t.Errorf("FlowsFlushed %d; want 1", n)
	}
}
