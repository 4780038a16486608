package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tungate/tungate/internal/cfgerr"
	"github.com/tungate/tungate/internal/units"
)

// fakeClock is an injected clock for limits and dynamic sets.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time             { return c.t }
func (c *fakeClock) advance(d time.Duration)    { c.t = c.t.Add(d) }
func newFakeClock() *fakeClock                  { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }
func withClock(p *Policy, c *fakeClock) *Policy { p.SetClock(c.now); return p }

func TestConditions(t *testing.T) {
	p := mustCompile(t, Config{
		Defaults: Defaults{Policy: "drop"},
		Rules: []RuleConfig{
			{Name: "est-only", Proto: List{"tcp"}, CtState: List{"established"}, DstPort: List{1}, Action: "allow"},             // 0
			{Name: "invalid-tcp", Proto: List{"tcp"}, CtState: List{"invalid"}, Action: "reject", RejectWith: "tcp-reset"},      // 1
			{Name: "ping4", Proto: List{"icmp", "icmpv6"}, ICMPType: List{"echo-request"}, Action: "allow"},                     // 2
			{Name: "icmp-num", Proto: List{"icmp"}, ICMPType: List{int64(13)}, Action: "reject"},                                // 3
			{Name: "not-sport", Proto: List{"udp"}, NotSrcPort: List{53, "100-200"}, DstPort: List{53}, Action: "allow"},        // 4
			{Name: "not-dport", Proto: List{"tcp"}, NotDstPort: List{22}, Src: List{"198.18.5.0/24"}, Action: "allow"},          // 5
			{Name: "not-src", Proto: List{"tcp"}, NotSrc: List{"198.18.6.1"}, Dst: List{"198.18.7.0/24"}, Action: "allow"},      // 6
			{Name: "admin", Proto: List{"udp"}, Dst: List{"198.18.8.8"}, Action: "reject", RejectWith: "icmp-admin-prohibited"}, // 7
			{Name: "many", Proto: List{"tcp"}, MaxConns: &MaxConnsConfig{Count: 10}, Action: "reject"},                          // 8
		},
	})
	tests := []struct {
		name   string
		f      *Flow
		rule   int
		action Action
		reject RejectKind
	}{
		{"new flow skips established-only rule", flow("tcp", "198.18.1.1:1000", "198.18.2.1:1"), -1, ActionDrop, 0},
		{"established matches established-only", ct(flow("tcp", "198.18.1.1:1000", "198.18.2.1:1"), CtEstablished), 0, ActionAllow, 0},
		{"invalid reaches invalid rule", ct(flow("tcp", "198.18.1.1:1000", "198.18.2.1:9"), CtInvalid), 1, ActionReject, RejectTCPReset},
		{"invalid udp falls to defaults.invalid", ct(flow("udp", "198.18.1.1:1000", "198.18.8.8:9"), CtInvalid), -1, ActionDrop, 0},
		{"echo request v4", icmpT(flow("icmp", "198.18.1.1", "198.18.2.1"), 8), 2, ActionAllow, 0},
		{"echo request v6 by name", icmpT(flow("icmpv6", "2001:2::1", "2001:2::2"), 128), 2, ActionAllow, 0},
		{"echo reply is not a request", icmpT(flow("icmp", "198.18.1.1", "198.18.2.1"), 0), -1, ActionDrop, 0},
		{"v6 type 8 is not echo-request", icmpT(flow("icmpv6", "2001:2::1", "2001:2::2"), 8), -1, ActionDrop, 0},
		{"icmp by number", icmpT(flow("icmp", "198.18.1.1", "198.18.2.1"), 13), 3, ActionReject, RejectICMPPortUnreachable},
		{"not_src_port excludes 53", flow("udp", "198.18.1.1:53", "198.18.2.1:53"), -1, ActionDrop, 0},
		{"not_src_port excludes range", flow("udp", "198.18.1.1:150", "198.18.2.1:53"), -1, ActionDrop, 0},
		{"not_src_port lets others", flow("udp", "198.18.1.1:5353", "198.18.2.1:53"), 4, ActionAllow, 0},
		{"not_dst_port excludes", flow("tcp", "198.18.5.1:1000", "198.18.2.1:22"), -1, ActionDrop, 0},
		{"not_dst_port lets others", flow("tcp", "198.18.5.1:1000", "198.18.2.1:23"), 5, ActionAllow, 0},
		{"not_src excludes", flow("tcp", "198.18.6.1:1000", "198.18.7.1:80"), -1, ActionDrop, 0},
		{"not_src lets others", flow("tcp", "198.18.6.2:1000", "198.18.7.1:80"), 6, ActionAllow, 0},
		{"admin prohibited", flow("udp", "198.18.6.2:1000", "198.18.8.8:80"), 7, ActionReject, RejectICMPAdminProhibited},
		{"max_conns at limit does not match", conns(flow("tcp", "198.18.9.1:1", "198.18.2.1:80"), 10), -1, ActionDrop, 0},
		{"max_conns above limit matches", conns(flow("tcp", "198.18.9.1:1", "198.18.2.1:80"), 11), 8, ActionReject, RejectTCPReset},
	}
	for _, tt := range tests {
		v := p.Decide(tt.f)
		if v.Rule != tt.rule || v.Action != tt.action || v.Reject != tt.reject {
			t.Errorf("%s: got %v, want rule %d %v/%v", tt.name, v, tt.rule, tt.action, tt.reject)
		}
	}
}

func ct(f *Flow, s CtState) *Flow    { f.CtState = s; return f }
func icmpT(f *Flow, typ uint8) *Flow { f.ICMPType = typ; return f }
func conns(f *Flow, n int) *Flow     { f.SrcConns = n; return f }

func TestAuditModes(t *testing.T) {
	rules := []RuleConfig{
		{Name: "log-all", Action: "log"}, // 0
		{Name: "try-block", Proto: List{"tcp"}, DstPort: List{80}, Action: "drop", Mode: "audit"}, // 1
		{Name: "web", Proto: List{"tcp"}, DstPort: List{80, 443}, Action: "allow"},                // 2
		{Name: "no-telnet", Proto: List{"tcp"}, DstPort: List{23}, Action: "reject"},              // 3
	}
	p := mustCompile(t, Config{Defaults: Defaults{Policy: "drop"}, Rules: rules})
	v := p.Decide(flow("tcp", "198.18.1.1:1", "198.18.2.1:80"))
	if v.Rule != 2 || v.Action != ActionAllow || len(v.Audits()) != 1 || v.Audit[0] != (AuditHit{Rule: 1, RuleID: p.rules[1].id, Action: ActionDrop}) || v.LogRule != 0 {
		t.Errorf("rule audit: %v audits %v", v, v.Audits())
	}
	if v := p.Decide(flow("tcp", "198.18.1.1:1", "198.18.2.1:23")); v.Rule != 3 || v.Action != ActionReject || v.NAudit != 0 {
		t.Errorf("enforced reject: %v", v)
	}
	p.CountVerdict(&v)
	if c := p.Counters(); c[1].Flows != 1 || c[2].Flows != 1 {
		t.Errorf("audit hit not counted: %+v", c[:3])
	}

	g := mustCompile(t, Config{Defaults: Defaults{Policy: "drop", Mode: "audit"}, Rules: rules})
	v = g.Decide(flow("tcp", "198.18.1.1:1", "198.18.2.1:23"))
	if v.Action != ActionAllow || v.Rule != -1 || len(v.Audits()) != 2 || v.Audit[0].Rule != 3 || v.Audit[1] != (AuditHit{Rule: -1, Action: ActionDrop}) {
		t.Errorf("global audit: %v audits %v", v, v.Audits())
	}
	if v := g.Decide(flow("tcp", "198.18.1.1:1", "198.18.2.1:443")); v.Action != ActionAllow || v.Rule != 2 || v.NAudit != 0 {
		t.Errorf("global audit allow: %v", v)
	}

	many := Config{Defaults: Defaults{Policy: "allow"}}
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		many.Rules = append(many.Rules, RuleConfig{Name: n, Action: "drop", Mode: "audit"})
	}
	v = mustCompile(t, many).Decide(flow("udp", "198.18.1.1:1", "198.18.2.1:2"))
	if v.NAudit != MaxAudit || !v.AuditMore || v.Action != ActionAllow {
		t.Errorf("audit overflow: n=%d more=%v %v", v.NAudit, v.AuditMore, v)
	}
}

func TestLimit(t *testing.T) {
	clk := newFakeClock()
	p := withClock(mustCompile(t, Config{
		Defaults: Defaults{Policy: "allow"},
		Rules: []RuleConfig{
			{Name: "ssh-flood", Proto: List{"tcp"}, DstPort: List{22}, Limit: &LimitConfig{Rate: "2/m", Burst: 3}, Action: "drop"},
			{Name: "icmp-ok", Proto: List{"icmp"}, Limit: &LimitConfig{Rate: "1/s", Burst: 1, Per: "rule", Match: "under"}, Action: "allow"},
			{Name: "icmp-rest", Proto: List{"icmp"}, Action: "drop"},
		},
	}), clk)
	ssh := func(src string) Verdict { return p.Decide(flow("tcp", src+":1000", "198.18.2.1:22")) }
	for i := range 3 {
		if v := ssh("198.18.1.1"); v.Rule != -1 {
			t.Fatalf("attempt %d within burst: %v", i, v)
		}
	}
	if v := ssh("198.18.1.1"); v.Rule != 0 {
		t.Fatalf("4th attempt should be over the limit: %v", v)
	}
	if v := ssh("198.18.1.2"); v.Rule != -1 {
		t.Errorf("another source has its own bucket: %v", v)
	}
	clk.advance(30 * time.Second) // one token back at 2/m
	if v := ssh("198.18.1.1"); v.Rule != -1 {
		t.Errorf("after refill: %v", v)
	}
	if v := ssh("198.18.1.1"); v.Rule != 0 {
		t.Errorf("refill gave more than one token: %v", v)
	}
	ping := func() int { return p.Decide(flow("icmp", "198.18.1.9", "198.18.2.1")).Rule }
	if r1, r2 := ping(), ping(); r1 != 1 || r2 != 2 {
		t.Errorf("per-rule under-limit: %d %d", r1, r2)
	}
	clk.advance(time.Second)
	if r := ping(); r != 1 {
		t.Errorf("per-rule refill: %d", r)
	}
}

func TestLimitTableIsBounded(t *testing.T) {
	clk := newFakeClock()
	p := withClock(mustCompile(t, Config{
		Defaults: Defaults{Policy: "allow"},
		Rules:    []RuleConfig{{Name: "l", Proto: List{"udp"}, Limit: &LimitConfig{Rate: "1/h", Burst: 1}, Action: "drop"}},
	}), clk)
	for i := range 20000 {
		a := netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
		p.Decide(&Flow{Proto: 17, Src: a, Dst: a, SrcPort: 1, DstPort: 1})
		clk.advance(time.Millisecond)
	}
	if n := len(p.rules[0].limit.slots); n != limitSets*limitWays {
		t.Errorf("limit table has %d slots, want fixed %d", n, limitSets*limitWays)
	}
	// The most recent source is still tracked: its second flow is over.
	last := netip.AddrFrom4([4]byte{198, 18, byte(19999 >> 8), byte(19999 & 0xff)})
	if v := p.Decide(&Flow{Proto: 17, Src: last, Dst: last, SrcPort: 1, DstPort: 1}); v.Rule != 0 {
		t.Errorf("recent key was evicted: %v", v)
	}
}

func TestAddToAndDynamicSets(t *testing.T) {
	clk := newFakeClock()
	cfg := Config{
		Defaults: Defaults{Policy: "allow"},
		Sets:     map[string]SetConfig{"ban": {Type: "cidr", Dynamic: true, Timeout: units.Duration(time.Hour), MaxElements: 2}},
		Rules: []RuleConfig{
			{Name: "banned", Src: List{"@ban"}, Action: "drop"},
			{Name: "scan", Proto: List{"tcp"}, DstPort: List{23}, AddTo: &AddToConfig{Set: "ban", FlushFlows: true}, Action: "reject"},
			{Name: "note-dst", Proto: List{"udp"}, DstPort: List{9}, AddTo: &AddToConfig{Set: "ban", Key: "dst"}, Action: "log"},
		},
	}
	p := withClock(mustCompile(t, cfg), clk)
	v := p.Decide(flow("tcp", "198.18.1.1:1", "198.18.2.1:23"))
	if v.Rule != 1 || len(v.AddTos()) != 1 {
		t.Fatalf("scan: %v addto %v", v, v.AddTos())
	}
	if a := v.AddTo[0]; a.Set != "ban" || a.Addr != netip.MustParseAddr("198.18.1.1") || !a.IsSrc || !a.Flush {
		t.Errorf("add_to record: %+v", a)
	}
	if v := p.Decide(flow("tcp", "198.18.1.1:1", "198.18.2.1:80")); v.Rule != -1 {
		t.Errorf("Decide must not add by itself: %v", v)
	}
	flush, n := p.ApplyAddTo(&v)
	if n != 1 || flush[0].Addr != netip.MustParseAddr("198.18.1.1") {
		t.Errorf("ApplyAddTo flush = %v %d", flush, n)
	}
	if v := p.Decide(flow("tcp", "198.18.1.1:1", "198.18.2.1:80")); v.Rule != 0 {
		t.Errorf("banned source: %v", v)
	}
	v = p.Decide(flow("udp", "198.18.1.5:1", "198.18.3.3:9"))
	if v.LogRule != 2 || v.NAddTo != 1 || v.AddTo[0].IsSrc || v.AddTo[0].Flush {
		t.Errorf("log rule add_to dst: %v %+v", v, v.AddTos())
	}
	if _, n := p.ApplyAddTo(&v); n != 0 {
		t.Errorf("no flush requested, got %d", n)
	}
	// Full: a third address is refused while the others live.
	if err := p.SetAdd("ban", "198.18.4.4", 0); !errors.Is(err, ErrSetFull) {
		t.Errorf("SetAdd on a full set: %v", err)
	}
	// Reload: a new policy carries the elements.
	q := withClock(mustCompile(t, cfg), clk)
	q.CarryCountersFrom(p)
	if v := q.Decide(flow("tcp", "198.18.1.1:1", "198.18.2.1:80")); v.Rule != 0 {
		t.Errorf("ban lost on reload: %v", v)
	}
	if l, err := q.SetList("ban"); err != nil || len(l) != 2 || l[0].Elem != "198.18.1.1" || l[1].Elem != "198.18.3.3" {
		t.Errorf("SetList = %v, %v", l, err)
	}
	if err := q.SetDel("ban", "198.18.3.3"); err != nil {
		t.Error(err)
	}
	if err := q.SetDel("ban", "198.18.3.3"); err == nil {
		t.Error("second SetDel succeeded")
	}
	if err := q.SetAdd("ban", "2001:2::7", time.Minute); err != nil {
		t.Error(err)
	}
	if v := q.Decide(flow("tcp", "[2001:2::7]:1", "[2001:2::1]:80")); v.Rule != 0 {
		t.Errorf("control-added v6 element: %v", v)
	}
	clk.advance(2 * time.Minute)
	if v := q.Decide(flow("tcp", "[2001:2::7]:1", "[2001:2::1]:80")); v.Rule != -1 {
		t.Errorf("element should have expired: %v", v)
	}
	if err := q.SetAdd("nope", "198.18.1.1", 0); err == nil {
		t.Error("SetAdd on unknown set")
	}
	if err := q.SetAdd("ban", "not-an-ip", 0); err == nil {
		t.Error("SetAdd with bad element")
	}
}

func TestDomainSets(t *testing.T) {
	p := mustCompile(t, Config{
		Defaults: Defaults{Policy: "allow"},
		Sets: map[string]SetConfig{
			"d": {Type: "domain", Elements: List{"example.org", "*.ads.example", "Tracker.Example."}},
		},
	})
	for name, want := range map[string]bool{
		"example.org": true, "www.example.org": true, "a.b.example.org": true, "EXAMPLE.ORG.": true,
		"badexample.org": false, "org": false, "ads.example": false, "x.ads.example": true,
		"tracker.example": true, "cdn.TRACKER.example": true, "": false, "example.org.evil": false,
	} {
		if got := p.DomainSetMatch("d", name); got != want {
			t.Errorf("DomainSetMatch(%q) = %v, want %v", name, got, want)
		}
	}
	if p.DomainSetMatch("missing", "example.org") {
		t.Error("unknown set matched")
	}
	m, ok := p.DomainMatcher("d")
	if !ok || !m("www.example.org") {
		t.Error("DomainMatcher")
	}
	if n := testing.AllocsPerRun(100, func() { p.DomainSetMatch("d", "Www.Example.ORG") }); n != 0 {
		t.Errorf("DomainSetMatch allocates %v", n)
	}
}

func TestSetFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("bad.txt", "# blocklist\n198.18.9.0/24\n\n  198.18.10.1   # one host\n2001:2:0:9::/64\n")
	write("ports.txt", "8080\n9000-9100\n")
	cfg := Config{
		Dir:      dir,
		Defaults: Defaults{Policy: "allow"},
		Sets: map[string]SetConfig{
			"bad":   {Type: "cidr", Elements: List{"198.18.11.0/24"}, Files: []string{"bad.txt"}},
			"ports": {Type: "port", Files: []string{"ports.txt"}},
		},
		Rules: []RuleConfig{{Name: "b", Proto: List{"tcp"}, Dst: List{"@bad"}, DstPort: List{"@ports"}, Action: "drop"}},
	}
	p := mustCompile(t, cfg)
	for dst, want := range map[string]int{
		"198.18.9.7:8080": 0, "198.18.10.1:9050": 0, "198.18.11.1:9100": 0, "[2001:2:0:9::1]:8080": 0,
		"198.18.10.2:8080": -1, "198.18.9.7:9101": -1,
	} {
		if v := p.Decide(flow("tcp", "198.18.1.1:1", dst)); v.Rule != want {
			t.Errorf("%s: %v, want rule %d", dst, v, want)
		}
	}
	if s := p.Summary(); s.Sets[0].Name != "bad" || s.Sets[0].Size != 4 {
		t.Errorf("summary sets: %+v", s.Sets)
	}

	write("broken.txt", "198.18.1.0/24\n\n   nonsense # x\n70000\n")
	cfg.Sets = map[string]SetConfig{
		"x":    {Type: "cidr", Files: []string{"broken.txt", "missing.txt"}},
		"xp":   {Type: "port", Files: []string{"broken.txt"}},
		"xabs": {Type: "cidr", Files: []string{filepath.Join(dir, "bad.txt")}},
	}
	cfg.Rules = nil
	_, err := Compile(cfg)
	keys := errKeys(t, err)
	var files []string
	var l cfgerr.List
	errors.As(err, &l)
	for _, e := range l {
		if f, line, col, ok := SetFilePos(e.Key); ok {
			files = append(files, fmt.Sprintf("%s:%d:%d", filepath.Base(f), line, col))
		}
	}
	// cidr: line 3 col 4 "nonsense", line 4 "70000"; port: line 1 (a CIDR), 3, and 4 (out of range).
	want := "broken.txt:3:4 broken.txt:4:1 broken.txt:1:1 broken.txt:3:4 broken.txt:4:1"
	if strings.Join(files, " ") != want {
		t.Errorf("set file positions %v, want %s (keys %v)", files, want, keys)
	}
	if !strings.Contains(strings.Join(keys, " "), "sets.x.files.1") {
		t.Errorf("missing file not reported at its key: %v", keys)
	}
}

func TestNewKeyErrors(t *testing.T) {
	cfg := Config{
		Defaults: Defaults{Policy: "drop"},
		Sets: map[string]SetConfig{
			"dyn-port":   {Type: "port", Dynamic: true, Timeout: units.Duration(time.Hour), MaxElements: 1},
			"dyn-nomax":  {Type: "cidr", Dynamic: true},
			"static-ttl": {Type: "cidr", Timeout: units.Duration(time.Hour)},
			"plain":      {Type: "cidr", Elements: List{"198.18.0.0/24"}},
			"ban":        {Type: "cidr", Dynamic: true, Timeout: units.Duration(time.Hour), MaxElements: 1},
		},
		Rules: []RuleConfig{
			{Name: "ct", CtState: List{"new", "bogus"}, Action: "allow"},                                                                        // 0
			{Name: "icmp-tcp", Proto: List{"tcp"}, ICMPType: List{"echo-request"}, Action: "allow"},                                             // 1
			{Name: "icmp-bad", Proto: List{"icmp"}, ICMPType: List{"pong", int64(300)}, Action: "allow"},                                        // 2
			{Name: "nsp", NotSrcPort: List{1}, Action: "allow"},                                                                                 // 3
			{Name: "lim", Limit: &LimitConfig{Rate: "often", Per: "flow", Match: "maybe", Burst: -1}, Action: "drop"},                           // 4
			{Name: "lim0", Limit: &LimitConfig{}, Action: "drop"},                                                                               // 5
			{Name: "mc", MaxConns: &MaxConnsConfig{Per: "dst", Count: -1}, Action: "drop"},                                                      // 6
			{Name: "add-static", AddTo: &AddToConfig{Set: "plain", Key: "both"}, Action: "drop"},                                                // 7
			{Name: "add-missing", AddTo: &AddToConfig{}, Action: "drop"},                                                                        // 8
			{Name: "mode", Mode: "loud", Action: "drop"},                                                                                        // 9
			{Name: "audit-add", Mode: "audit", AddTo: &AddToConfig{Set: "ban"}, Action: "drop"},                                                 // 10
			{Name: "pl-limit", Proto: List{"tcp"}, Payload: []PayloadConfig{{Contains: "x"}}, Limit: &LimitConfig{Rate: "1/s"}, Action: "drop"}, // 11
		},
		Reject: RejectConfig{MaxRate: "lots"},
		Reload: ReloadConfig{ExistingFlows: "sometimes"},
		Log:    LogConfig{Burst: -1},
	}
	_, err := Compile(cfg)
	got := strings.Join(errKeys(t, err), " ")
	for _, k := range []string{
		"sets.dyn-port.dynamic", "sets.dyn-nomax.timeout", "sets.dyn-nomax.max_elements", "sets.static-ttl.timeout",
		"rule.0.ct_state.1", "rule.1.icmp_type", "rule.2.icmp_type.0", "rule.2.icmp_type.1", "rule.3.not_src_port",
		"rule.4.limit.rate", "rule.4.limit.per", "rule.4.limit.match", "rule.4.limit.burst", "rule.5.limit.rate",
		"rule.6.max_conns.per", "rule.6.max_conns.count", "rule.7.add_to.key", "rule.7.add_to.set", "rule.8.add_to.set",
		"rule.9.mode", "rule.10.add_to", "rule.11.limit", "reject.max_rate", "reload.existing_flows", "log.burst",
	} {
		if !strings.Contains(" "+got+" ", " "+k+" ") {
			t.Errorf("missing error %s in %s", k, got)
		}
	}
}

func TestAccessors(t *testing.T) {
	p := mustCompile(t, Config{
		Defaults: Defaults{Policy: "drop"},
		Log:      LogConfig{Rate: "50/s", Burst: 7},
		Reject:   RejectConfig{MaxRate: "10/s"},
		Reload:   ReloadConfig{ExistingFlows: "recheck"},
	})
	if r, b := p.LogRate(); r != 50 || b != 7 {
		t.Errorf("LogRate = %v %v", r, b)
	}
	if p.RejectMaxRate() != 10 || !p.RecheckExistingFlows() || p.HasInvalidRules() {
		t.Errorf("accessors: %v %v %v", p.RejectMaxRate(), p.RecheckExistingFlows(), p.HasInvalidRules())
	}
	d := mustCompile(t, Config{Defaults: Defaults{Policy: "drop"}})
	if r, b := d.LogRate(); r != 20 || b != 20 || d.RejectMaxRate() != 0 || d.RecheckExistingFlows() {
		t.Errorf("defaults: %v %v %v %v", r, b, d.RejectMaxRate(), d.RecheckExistingFlows())
	}
}

func TestDecideNoAllocsWithNewKeys(t *testing.T) {
	clk := newFakeClock()
	p := withClock(mustCompile(t, Config{
		Defaults: Defaults{Policy: "drop"},
		Sets: map[string]SetConfig{
			"ban": {Type: "cidr", Dynamic: true, Timeout: units.Duration(time.Hour), MaxElements: 10},
		},
		Rules: []RuleConfig{
			{Name: "ban", Src: List{"@ban"}, Action: "drop"},
			{Name: "audit", Proto: List{"tcp"}, Mode: "audit", Action: "drop"},
			{Name: "lim", Proto: List{"tcp"}, Limit: &LimitConfig{Rate: "1000/s"}, Action: "drop"},
			{Name: "mc", Proto: List{"tcp"}, MaxConns: &MaxConnsConfig{Count: 100}, AddTo: &AddToConfig{Set: "ban"}, Action: "drop"},
			{Name: "ok", Proto: List{"tcp"}, NotSrcPort: List{7}, CtState: List{"new"}, Action: "allow"},
		},
	}), clk)
	f := flow("tcp", "198.18.1.1:1000", "198.18.2.1:443")
	if n := testing.AllocsPerRun(200, func() { p.Decide(f) }); n != 0 {
		t.Errorf("Decide allocates %v per run", n)
	}
}

// Sources that differ only in their last byte must not crowd one bucket,
// or the LRU would forget them before they reach their limit.
func TestLimitSpreadsKeys(t *testing.T) {
	l := newLimiter(LimitConfig{}, perSrc, 1, 1, true)
	l.slot(netip.MustParseAddr("198.18.0.0"), 1)
	used := map[*bucket]bool{}
	for i := range 64 {
		k := netip.AddrFrom4([4]byte{198, 18, 0, byte(i)}).As16()
		used[&l.bucketOf(k)[0]] = true
	}
	if len(used) < 40 {
		t.Errorf("64 consecutive addresses use only %d of %d buckets", len(used), limitSets)
	}
}
