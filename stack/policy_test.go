package stack

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tungate/tungate/stack/decisionlog"
	"github.com/tungate/tungate/stack/packet"
	"github.com/tungate/tungate/stack/verdict"

	"github.com/tungate/tungate/internal/units"
	"github.com/tungate/tungate/policy"
)

// compile builds a policy for a hook test, logging every decision.
func compile(t testing.TB, cfg policy.Config) *policy.Policy {
	t.Helper()
	if cfg.Defaults.Policy == "" {
		cfg.Defaults.Policy = "drop"
	}
	if cfg.Log.Decisions == "" {
		cfg.Log.Decisions = "all"
	}
	if cfg.Log.Rate == "" {
		cfg.Log.Rate = "1000/s"
	}
	p, err := policy.Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// logLines returns the harness's JSON log records with msg.
func logLines(t testing.TB, h *harness, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(h.log.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// hasDecision reports whether a decision line has every key/value of want.
func hasDecision(t testing.TB, h *harness, want map[string]string) bool {
	t.Helper()
next:
	for _, m := range logLines(t, h, "decision") {
		for k, v := range want {
			if m[k] != v {
				continue next
			}
		}
		return true
	}
	return false
}

func udpPkt(src netip.Addr, sport, dport uint16) []byte {
	dst := srv4
	if src.Is6() {
		dst = srv6
	}
	return ipPkt(src, dst, packet.ProtoUDP, udpHdr(sport, dport, []byte("payload")))
}

func TestAuditLogged(t *testing.T) {
	pol := compile(t, policy.Config{
		Rules: []policy.RuleConfig{
			{Name: "audit-block", Proto: policy.List{"tcp"}, DstPort: policy.List{int64(22)}, Action: "drop", Mode: "audit"},
			{Name: "ssh", Proto: policy.List{"tcp"}, DstPort: policy.List{int64(22)}, Action: "allow"},
		},
	})
	h := newHarness(t, harnessOpts{noRun: true, pol: pol})
	var p packet.Parsed
	if got := h.s.hook(synPkt(cli4, srv4, 40000, 22), &p); got != verdict.Pass {
		t.Fatalf("SYN under an audit rule: action %d, want inject", got)
	}
	if !hasDecision(t, h, map[string]string{"rule": "audit-block", "action": "would-drop", "reason": "audit"}) {
		t.Errorf("no would-drop audit line in %s", h.log.String())
	}
	if !hasDecision(t, h, map[string]string{"rule": "ssh", "action": "allow", "reason": "rule"}) {
		t.Errorf("no allow line for the deciding rule in %s", h.log.String())
	}
	c := pol.Counters()
	if c[0].Flows != 1 || c[1].Flows != 1 || h.s.Stats().AuditHits != 1 {
		t.Errorf("audit rule flows %d, deciding rule flows %d, AuditHits %d; want 1, 1, 1", c[0].Flows, c[1].Flows, h.s.Stats().AuditHits)
	}

	// [defaults] mode = "audit": the default drop passes and is logged as
	// would-drop by "default".
	pol = compile(t, policy.Config{Defaults: policy.Defaults{Policy: "drop", Mode: "audit"}})
	h = newHarness(t, harnessOpts{noRun: true, pol: pol})
	if got := h.s.hook(udpPkt(cli4, 40000, 9999), &p); got != verdict.Pass {
		t.Fatalf("default drop in audit mode: action %d, want inject", got)
	}
	if !hasDecision(t, h, map[string]string{"rule": "default", "action": "would-drop", "reason": "audit"}) {
		t.Errorf("no default would-drop line in %s", h.log.String())
	}
	if h.ct.Len() != 1 {
		t.Errorf("audited flow not tracked: %d flows", h.ct.Len())
	}
}

// banPolicy trips a ban on dst port 2222 and drops banned sources.
func banPolicy(t testing.TB) *policy.Policy {
	return compile(t, policy.Config{
		Sets: map[string]policy.SetConfig{
			"ban": {Type: "cidr", Dynamic: true, Timeout: units.Duration(time.Hour), MaxElements: 16},
		},
		Rules: []policy.RuleConfig{
			{Name: "banned", Src: policy.List{"@ban"}, Action: "drop"},
			{Name: "trip", Proto: policy.List{"tcp"}, DstPort: policy.List{int64(2222)}, Action: "drop",
				AddTo: &policy.AddToConfig{Set: "ban", Key: "src", FlushFlows: true}},
			{Name: "dns", Proto: policy.List{"udp"}, DstPort: policy.List{int64(53)}, Action: "allow"},
		},
	})
}

func TestAddToFlushesFlows(t *testing.T) {
	h := newHarness(t, harnessOpts{noRun: true, pol: banPolicy(t)})
	var p packet.Parsed
	for _, src := range []netip.Addr{cli4, netip.MustParseAddr("198.18.1.3")} {
		if got := h.s.hook(udpPkt(src, 40000, 53), &p); got != verdict.Pass {
			t.Fatalf("dns from %v: action %d, want inject", src, got)
		}
	}
	if h.ct.Len() != 2 {
		t.Fatalf("%d flows tracked, want 2", h.ct.Len())
	}
	if got := h.s.hook(synPkt(cli4, srv4, 40001, 2222), &p); got != verdict.Drop {
		t.Fatalf("SYN to the trip port: action %d, want drop", got)
	}
	h.s.apply.Flush()
	if st := h.s.Stats(); st.FlowsFlushed != 1 || h.ct.Len() != 1 {
		t.Errorf("after flush: FlowsFlushed %d, %d flows; want 1, 1 (the other source's flow stays)", st.FlowsFlushed, h.ct.Len())
	}
	if got := h.s.hook(udpPkt(cli4, 40000, 53), &p); got != verdict.Drop {
		t.Errorf("banned source's dns: action %d, want drop", got)
	}
	if !hasDecision(t, h, map[string]string{"rule": "banned", "action": "drop", "src": "198.18.1.2:40000"}) {
		t.Errorf("no drop by the ban rule in %s", h.log.String())
	}
	if got := h.s.hook(udpPkt(netip.MustParseAddr("198.18.1.3"), 40000, 53), &p); got != verdict.Pass {
		t.Errorf("other source's dns after the ban: action %d, want inject", got)
	}
}

func TestLimitThroughHook(t *testing.T) {
	for _, match := range []string{"over", "under"} {
		t.Run(match, func(t *testing.T) {
			action, def := "drop", "allow"
			if match == "under" {
				action, def = "allow", "drop"
			}
			pol := compile(t, policy.Config{
				Defaults: policy.Defaults{Policy: def},
				Rules: []policy.RuleConfig{{
					Name: "limited", Proto: policy.List{"tcp"}, DstPort: policy.List{int64(22)}, Action: action,
					Limit: &policy.LimitConfig{Rate: "1/h", Burst: 2, Per: "src", Match: match},
				}},
			})
			h := newHarness(t, harnessOpts{noRun: true, pol: pol})
			var p packet.Parsed
			var got []verdict.Outcome
			for i := range 4 {
				got = append(got, h.s.hook(synPkt(cli4, srv4, uint16(41000+i), 22), &p))
			}
			want := []verdict.Outcome{verdict.Pass, verdict.Pass, verdict.Drop, verdict.Drop}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("SYNs within and beyond a burst of 2: actions %v, want %v", got, want)
				}
			}
			// A retransmitted SYN of an allowed flow is established: it
			// takes no token and passes.
			if a := h.s.hook(synPkt(cli4, srv4, 41000, 22), &p); a != verdict.Pass {
				t.Errorf("retransmitted SYN of an allowed flow: action %d, want inject", a)
			}
			if match == "over" && pol.Counters()[0].Flows != 2 {
				t.Errorf("limit rule decided %d flows, want 2", pol.Counters()[0].Flows)
			}
		})
	}
}

func TestCtStateInvalidRule(t *testing.T) {
	pol := compile(t, policy.Config{
		Rules: []policy.RuleConfig{
			{Name: "invalid-tcp", Proto: policy.List{"tcp"}, CtState: policy.List{"invalid"}, Action: "reject", RejectWith: "tcp-reset"},
			{Name: "web", Proto: policy.List{"tcp"}, DstPort: policy.List{int64(80)}, Action: "allow"},
		},
	})
	h := newHarness(t, harnessOpts{noRun: true, pol: pol})
	var p packet.Parsed
	ack := ipPkt(cli4, srv4, packet.ProtoTCP, tcpHdr(40000, 80, 1, 1, 0x10, nil))
	if got := h.s.hook(ack, &p); got != verdict.RejectTCP {
		t.Errorf("stray ACK with a ct_state invalid reject rule: action %d, want RST", got)
	}
	if !hasDecision(t, h, map[string]string{"rule": "invalid-tcp", "action": "reject", "reason": "invalid"}) {
		t.Errorf("no reject line by the invalid rule in %s", h.log.String())
	}
	if c := pol.Counters()[0]; c.Flows != 1 || c.Packets != 1 {
		t.Errorf("invalid rule counted %d decisions, %d packets; want 1, 1", c.Flows, c.Packets)
	}
	// A UDP packet conntrack calls invalid (an echo reply without a
	// request) gets defaults.invalid: no rule for it.
	reply := ipPkt(srv4, cli4, packet.ProtoICMP, func() []byte { b := echoHdr(false, 1, 1, nil); b[0] = 0; return b }())
	if got := h.s.hook(reply, &p); got != verdict.Drop {
		t.Errorf("stray echo reply: action %d, want drop", got)
	}
	// The new flow is still decided as new: the invalid rule does not match.
	if got := h.s.hook(synPkt(cli4, srv4, 40001, 80), &p); got != verdict.Pass {
		t.Errorf("SYN to the web port: action %d, want inject", got)
	}
}

func TestSourceCountReachesPolicy(t *testing.T) {
	pol := compile(t, policy.Config{
		Defaults: policy.Defaults{Policy: "allow"},
		Rules: []policy.RuleConfig{
			{Name: "too-many", MaxConns: &policy.MaxConnsConfig{Per: "src", Count: 2}, Action: "drop"},
		},
	})
	h := newHarness(t, harnessOpts{noRun: true, pol: pol})
	var p packet.Parsed
	// max_conns matches above 2: the source's first three flows open (it
	// tracks 0, 1, 2 before each), the fourth finds 3.
	for i := range 3 {
		if got := h.s.hook(udpPkt(cli4, uint16(40000+i), 53), &p); got != verdict.Pass {
			t.Fatalf("flow %d of the source: action %d, want inject", i+1, got)
		}
	}
	if got := h.s.hook(udpPkt(cli4, 40003, 53), &p); got != verdict.Drop {
		t.Errorf("source with 3 flows under max_conns 2: action %d, want drop", got)
	}
	if got := h.s.hook(udpPkt(netip.MustParseAddr("198.18.1.9"), 40000, 53), &p); got != verdict.Pass {
		t.Errorf("source without flows: action %d, want inject", got)
	}
}

func TestInvalidFlagsReachConntrack(t *testing.T) {
	h := newHarness(t, harnessOpts{noRun: true})
	var p packet.Parsed
	for _, flags := range []uint8{0x00, 0x29, 0x03, 0x01, 0x06} { // NULL, XMAS, SYN+FIN, FIN, SYN+RST
		before := h.ct.Stats().Invalid
		if got := h.s.hook(ipPkt(cli4, srv4, packet.ProtoTCP, tcpHdr(40000, portAllow, 1, 0, flags, nil)), &p); got != verdict.Drop {
			t.Errorf("flags %#x: action %d, want drop", flags, got)
		}
		if d := h.ct.Stats().Invalid - before; d != 1 {
			t.Errorf("flags %#x: conntrack invalid grew by %d, want 1", flags, d)
		}
	}
	if st := h.s.Stats(); len(st.Malformed) != 0 || st.Invalid != 5 || h.ct.Len() != 0 {
		t.Errorf("Malformed %v, Invalid %d, flows %d; want none, 5, 0", st.Malformed, st.Invalid, h.ct.Len())
	}
}

func TestRejectAdminProhibited(t *testing.T) {
	pol := compile(t, policy.Config{
		Rules: []policy.RuleConfig{
			{Name: "admin", DstPort: policy.List{int64(9)}, Proto: policy.List{"tcp", "udp"}, Action: "reject", RejectWith: "icmp-admin-prohibited"},
		},
	})
	for _, fam := range families() {
		for _, proto := range []uint8{packet.ProtoTCP, packet.ProtoUDP} {
			t.Run(fam.name+"/"+decisionlog.ProtoName(proto), func(t *testing.T) {
				h := newHarness(t, harnessOpts{pol: pol})
				var orig []byte
				if proto == packet.ProtoTCP {
					orig = synPkt(fam.cli, fam.srv, 40000, 9)
				} else {
					orig = ipPkt(fam.cli, fam.srv, packet.ProtoUDP, udpHdr(40000, 9, []byte("x")))
				}
				h.mem.Inject(orig)
				icmp := h.next(t, nil)
				checkGVisorValid(t, icmp)
				var p packet.Parsed
				if r := packet.Parse(icmp, &p); r != packet.ReasonNone || !p.ICMPErr {
					t.Fatalf("reply: %v, ICMP error %v", r, p.ICMPErr)
				}
				wantType, wantCode := uint8(3), uint8(13)
				if fam.cli.Is6() {
					wantType, wantCode = 1, 1
				}
				if p.CT.ICMPType != wantType || p.CT.ICMPCode != wantCode {
					t.Errorf("type/code %d/%d, want %d/%d", p.CT.ICMPType, p.CT.ICMPCode, wantType, wantCode)
				}
				if !bytes.Equal(icmp[p.L4+8:], orig[:min(len(orig), len(icmp)-p.L4-8)]) || len(icmp)-p.L4-8 < 28 {
					t.Errorf("quote differs from the offending packet")
				}
				if p.CT.Key.SrcAddr() != fam.srv || p.CT.Key.DstAddr() != fam.cli {
					t.Errorf("error goes %v -> %v, want %v -> %v", p.CT.Key.SrcAddr(), p.CT.Key.DstAddr(), fam.srv, fam.cli)
				}
			})
		}
	}
}

func TestRejectMaxRate(t *testing.T) {
	pol := compile(t, policy.Config{
		Defaults: policy.Defaults{Policy: "reject"},
		Reject:   policy.RejectConfig{MaxRate: "2/s"},
	})
	// A stopped clock: the bucket holds its burst of 2 and never refills.
	stopped := time.Now()
	h := newHarness(t, harnessOpts{noRun: true, pol: pol, clock: func() time.Time { return stopped }})
	var p packet.Parsed
	var got []verdict.Outcome
	for i := range 4 {
		got = append(got, h.s.hook(synPkt(cli4, srv4, uint16(40000+i), 80), &p))
	}
	want := []verdict.Outcome{verdict.RejectTCP, verdict.RejectTCP, verdict.Drop, verdict.Drop}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("4 rejects at max_rate 2/s (burst 2): %v, want %v", got, want)
		}
	}
	if st := h.s.Stats(); st.RejectsLimited != 2 || st.PolicyRejects != 4 {
		t.Errorf("RejectsLimited %d, PolicyRejects %d; want 2, 4", st.RejectsLimited, st.PolicyRejects)
	}
	// Unlimited (no [reject] max_rate) after a reload.
	h.s.SetPolicy(compile(t, policy.Config{Defaults: policy.Defaults{Policy: "reject"}}))
	for i := range 10 {
		if a := h.s.hook(synPkt(cli4, srv4, uint16(41000+i), 80), &p); a != verdict.RejectTCP {
			t.Fatalf("reject %d without max_rate: action %d", i, a)
		}
	}
}

func TestSuppressedSummary(t *testing.T) {
	pol := compile(t, policy.Config{
		Rules: []policy.RuleConfig{{Name: "noisy", Proto: policy.List{"udp"}, Action: "drop", Log: true}},
		Log:   policy.LogConfig{Decisions: "drops", Rate: "1/h", Burst: 2},
	})
	h := newHarness(t, harnessOpts{noRun: true, pol: pol})
	var p packet.Parsed
	for i := range 10 {
		h.s.hook(udpPkt(cli4, uint16(40000+i), 53), &p)
	}
	for i := range 3 {
		h.s.hook(synPkt(cli4, srv4, uint16(40000+i), 80), &p)
	}
	st := h.s.Stats()
	if st.PolicyDrops != 13 {
		t.Errorf("PolicyDrops %d, want 13: the log budget must not affect drops", st.PolicyDrops)
	}
	if n := len(logLines(t, h, "decision")); n != 2 || st.LogSuppressed != 11 {
		t.Errorf("%d decision lines, %d suppressed; want 2 (burst), 11", n, st.LogSuppressed)
	}
	h.s.dlog.FlushSuppressed()
	sum := map[string]float64{}
	for _, m := range logLines(t, h, "decisions suppressed") {
		sum[m["rule"].(string)] = m["count"].(float64)
	}
	if sum["noisy"] != 8 || sum["default"] != 3 || len(sum) != 2 {
		t.Errorf("suppressed summary %v, want noisy 8 and default 3", sum)
	}
	h.s.dlog.FlushSuppressed()
	if n := len(logLines(t, h, "decisions suppressed")); n != 2 {
		t.Errorf("a second summary without new suppressions wrote %d lines in all, want still 2", n)
	}
}

func TestRecheckOnReload(t *testing.T) {
	two := func(recheck string, ports ...int64) *policy.Policy {
		return compile(t, policy.Config{
			Rules: []policy.RuleConfig{{Name: "dns", Proto: policy.List{"udp"}, DstPort: policy.List(func() []any {
				l := make([]any, len(ports))
				for i, p := range ports {
					l[i] = p
				}
				return l
			}()), Action: "allow"}},
			Reload: policy.ReloadConfig{ExistingFlows: recheck},
		})
	}
	h := newHarness(t, harnessOpts{noRun: true, pol: two("", 53, 54)})
	var p packet.Parsed
	a, b := udpPkt(cli4, 40000, 53), udpPkt(cli4, 40001, 54)
	for _, pkt := range [][]byte{a, b} {
		if got := h.s.hook(pkt, &p); got != verdict.Pass {
			t.Fatalf("first packet: action %d", got)
		}
	}
	// keep: nothing is rechecked.
	h.s.SetPolicy(two("keep", 53))
	if got := h.s.hook(b, &p); got != verdict.Pass {
		t.Fatalf("existing_flows = keep: action %d, want inject", got)
	}
	h.s.SetPolicy(two("recheck", 53))
	if n := h.s.flows.PendingRechecks(); n != 2 {
		t.Fatalf("%d flows pending recheck, want 2", n)
	}
	reply := ipPkt(srv4, cli4, packet.ProtoUDP, udpHdr(54, 40001, []byte("r")))
	if got := h.s.hook(reply, &p); got != verdict.Drop {
		t.Errorf("packet of a now-denied flow (reply direction): action %d, want drop", got)
	}
	if got := h.s.hook(b, &p); got != verdict.Drop {
		t.Errorf("later packet of the denied flow: action %d, want drop", got)
	}
	if got := h.s.hook(a, &p); got != verdict.Pass {
		t.Errorf("still-allowed flow: action %d, want inject", got)
	}
	if st := h.s.Stats(); st.RecheckTeardowns != 1 || h.s.flows.PendingRechecks() != 0 {
		t.Errorf("RecheckTeardowns %d, pending %d; want 1, 0", st.RecheckTeardowns, h.s.flows.PendingRechecks())
	}
	if !hasDecision(t, h, map[string]string{"action": "drop", "reason": "recheck", "dst": "198.18.2.1:54"}) {
		t.Errorf("no recheck line in %s", h.log.String())
	}

	// Flows that never send again are pruned once they left conntrack.
	h.s.SetPolicy(two("recheck", 53))
	if n := h.s.flows.PendingRechecks(); n != 1 {
		t.Fatalf("%d flows pending recheck, want 1 (the denied flow is not rechecked)", n)
	}
	var pa packet.Parsed
	packet.Parse(a, &pa)
	if !h.ct.Delete(pa.CT.Key) {
		t.Fatal("allowed flow not in conntrack")
	}
	// conntrack's destroy callback released the mark.
	if n := h.s.flows.PendingRechecks(); n != 0 {
		t.Errorf("%d flows pending after their flow left conntrack, want 0", n)
	}
}

func TestRuleCountersBothDirections(t *testing.T) {
	h, pkt := establishedUDP(t)
	reply := ipPkt(srv4, cli4, packet.ProtoUDP, udpHdr(portUDPAllow, 40000, []byte("answer")))
	if _, ok := h.s.trackOutbound(reply); !ok {
		t.Fatal("reply not passed")
	}
	pol := h.s.pol.Load()
	var c policy.RuleCounter
	for _, rc := range pol.Counters() {
		if rc.Name == "allow-dns" {
			c = rc
		}
	}
	if want := uint64(2*len(pkt) + len(reply)); c.Flows != 1 || c.Packets != 3 || c.Bytes != want {
		t.Errorf("allow-dns: flows %d packets %d bytes %d; want 1, 3, %d", c.Flows, c.Packets, c.Bytes, want)
	}
}
