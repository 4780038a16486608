package policy

import (
	"strings"
	"testing"
)

func payloadPolicy(t testing.TB, depth int64, rules ...RuleConfig) *Policy {
	t.Helper()
	cfg := Config{Defaults: Defaults{Policy: "allow"}, Rules: rules}
	cfg.Inspect.StreamDepth = 0
	cfg.Inspect.StreamDepthSet = true
	if depth > 0 {
		cfg.Inspect.StreamDepth = unitsSize(depth)
	}
	return mustCompile(t, cfg)
}

func inspectorFor(t testing.TB, p *Policy, f *Flow) *Inspector {
	t.Helper()
	v := p.Decide(f)
	if !v.Armed {
		t.Fatalf("flow not armed: %v", v)
	}
	in := p.NewInspector(f, v)
	if in == nil {
		t.Fatal("NewInspector = nil for an armed flow")
	}
	return in
}

var tcpFlow = flow("tcp", "198.18.1.5:40000", "198.18.2.1:80")

func TestInspectorSplitPattern(t *testing.T) {
	p := payloadPolicy(t, 0, RuleConfig{Name: "jndi", Proto: List{"tcp"}, Payload: []PayloadConfig{{Contains: "${jndi:"}}, Action: "reject"})
	in := inspectorFor(t, p, tcpFlow)
	feeds := []string{"GET /?q=$", "{jn", "", "di", ":ldap://x"}
	for i, s := range feeds {
		h, ok := in.Feed(ToServer, []byte(s))
		if ok != (i == len(feeds)-1) {
			t.Fatalf("feed %d (%q): hit=%v", i, s, ok)
		}
		if ok && (h.Rule != 0 || h.Action != ActionReject || h.Reject != RejectTCPReset || h.Pattern != "${jndi:" || h.RuleID != internName("jndi")) {
			t.Fatalf("hit = %+v", h)
		}
	}
	if _, ok := in.Feed(ToServer, []byte("${jndi:")); ok {
		t.Fatal("hit after a terminal hit")
	}
	if !in.Done() {
		t.Fatal("Done() false after a hit")
	}
}

func TestInspectorKMPOverlap(t *testing.T) {
	// A partial match that fails must fall back, not restart: "aab" in "aaab".
	p := payloadPolicy(t, 0, RuleConfig{Name: "aab", Payload: []PayloadConfig{{Contains: "aab"}}, Action: "drop"})
	in := inspectorFor(t, p, tcpFlow)
	if _, ok := in.Feed(ToServer, []byte("xa")); ok {
		t.Fatal("early hit")
	}
	if _, ok := in.Feed(ToServer, []byte("a")); ok {
		t.Fatal("early hit")
	}
	if h, ok := in.Feed(ToServer, []byte("ab")); !ok || h.Action != ActionDrop {
		t.Fatalf("missed aab across feeds: %+v %v", h, ok)
	}
}

func TestInspectorNoCase(t *testing.T) {
	p := payloadPolicy(t, 0,
		RuleConfig{Name: "ci", Payload: []PayloadConfig{{Contains: "Select ", NoCase: true}}, Action: "reject"},
		RuleConfig{Name: "cs", Payload: []PayloadConfig{{Contains: "UNION"}}, Action: "drop"},
	)
	in := inspectorFor(t, p, tcpFlow)
	if _, ok := in.Feed(ToServer, []byte("union all")); ok {
		t.Fatal("case-sensitive pattern matched other case")
	}
	if h, ok := in.Feed(ToServer, []byte("... sELECT * from")); !ok || h.Rule != 0 {
		t.Fatalf("nocase missed: %+v %v", h, ok)
	}
	in = inspectorFor(t, p, tcpFlow)
	if h, ok := in.Feed(ToServer, []byte("x UNION y")); !ok || h.Rule != 1 {
		t.Fatalf("case-sensitive missed: %+v %v", h, ok)
	}
}

func TestInspectorDir(t *testing.T) {
	p := payloadPolicy(t, 0,
		RuleConfig{Name: "srv", Payload: []PayloadConfig{{Contains: "up"}}, Action: "drop"},
		RuleConfig{Name: "cli", Payload: []PayloadConfig{{Contains: "down", Dir: "to_client"}}, Action: "drop"},
		RuleConfig{Name: "both", Payload: []PayloadConfig{{Contains: "any", Dir: "both"}}, Action: "drop"},
	)
	in := inspectorFor(t, p, tcpFlow)
	if _, ok := in.Feed(ToClient, []byte("up up")); ok {
		t.Fatal("to_server pattern matched to_client bytes")
	}
	if _, ok := in.Feed(ToServer, []byte("down")); ok {
		t.Fatal("to_client pattern matched to_server bytes")
	}
	// Directions keep separate state: "do" to the server then "wn" to the
	// client is not "down".
	if _, ok := in.Feed(ToServer, []byte("do")); ok {
		t.Fatal("unexpected hit")
	}
	if _, ok := in.Feed(ToClient, []byte("wn")); ok {
		t.Fatal("state leaked between directions")
	}
	if h, ok := in.Feed(ToClient, []byte("..an")); ok {
		t.Fatalf("unexpected hit %+v", h)
	}
	if h, ok := in.Feed(ToClient, []byte("y")); !ok || h.Rule != 2 {
		t.Fatalf("both-dir pattern missed to_client: %+v %v", h, ok)
	}
	in = inspectorFor(t, p, tcpFlow)
	if h, ok := in.Feed(ToClient, []byte("go down")); !ok || h.Rule != 1 {
		t.Fatalf("to_client pattern missed: %+v %v", h, ok)
	}
}

func TestInspectorFirstRuleWins(t *testing.T) {
	p := payloadPolicy(t, 0,
		RuleConfig{Name: "late-in-data", Payload: []PayloadConfig{{Contains: "zzz"}, {Contains: "yyy"}}, Action: "allow"},
		RuleConfig{Name: "early-in-data", Payload: []PayloadConfig{{Contains: "aaa"}}, Action: "drop"},
	)
	in := inspectorFor(t, p, tcpFlow)
	// A payload list is an AND: rule 0 needs zzz and yyy.
	if h, ok := in.Feed(ToServer, []byte("yyy")); ok {
		t.Fatalf("rule 0 hit on one of its two entries: %+v", h)
	}
	h, ok := in.Feed(ToServer, []byte("aaa ... zzz"))
	if !ok || h.Rule != 0 || h.Action != ActionAllow || h.Pattern != "zzz" {
		t.Fatalf("hit = %+v %v, want rule 0 (file order) completed by its first entry", h, ok)
	}
	if _, ok := in.Feed(ToServer, []byte("aaa")); ok {
		t.Fatal("allow hit must stop inspection")
	}
}

func TestInspectorStreamDepth(t *testing.T) {
	p := payloadPolicy(t, 10, RuleConfig{Name: "deep", Payload: []PayloadConfig{{Contains: "evil", Dir: "both"}}, Action: "drop"})
	in := inspectorFor(t, p, tcpFlow)
	if _, ok := in.Feed(ToServer, []byte("12345678ev")); ok {
		t.Fatal("unexpected hit")
	}
	if _, ok := in.Feed(ToServer, []byte("il")); ok {
		t.Fatal("matched past stream_depth")
	}
	// The other direction has its own budget: "evil" ends at byte 10.
	if _, ok := in.Feed(ToClient, []byte("123456")); ok {
		t.Fatal("unexpected hit")
	}
	if in.Done() {
		t.Fatal("Done() with budget left")
	}
	if h, ok := in.Feed(ToClient, []byte("evil")); !ok || h.Rule != 0 {
		t.Fatalf("missed a match ending exactly at stream_depth: %+v %v", h, ok)
	}
}

func TestInspectorDepthExhausted(t *testing.T) {
	p := payloadPolicy(t, 4, RuleConfig{Name: "r", Payload: []PayloadConfig{{Contains: "abcd", Dir: "both"}}, Action: "drop"})
	in := inspectorFor(t, p, tcpFlow)
	in.Feed(ToServer, []byte("xxxx"))
	in.Feed(ToClient, []byte("xxxxx"))
	if !in.Done() {
		t.Fatal("Done() false with both directions at stream_depth")
	}
}

func TestInspectorArmedSubset(t *testing.T) {
	p := payloadPolicy(t, 0,
		RuleConfig{Name: "udp-only", Proto: List{"udp"}, Payload: []PayloadConfig{{Contains: "u"}}, Action: "drop"},
		RuleConfig{Name: "port-81", Proto: List{"tcp"}, DstPort: List{81}, Payload: []PayloadConfig{{Contains: "p"}}, Action: "drop"},
		RuleConfig{Name: "tcp-80", Proto: List{"tcp"}, DstPort: List{80}, Payload: []PayloadConfig{{Contains: "t"}}, Action: "drop"},
		RuleConfig{Name: "allow-80", Proto: List{"tcp"}, DstPort: List{80}, Action: "allow"},
		RuleConfig{Name: "after", Payload: []PayloadConfig{{Contains: "a"}}, Action: "drop"},
	)
	in := inspectorFor(t, p, tcpFlow)
	if _, ok := in.Feed(ToServer, []byte("u p a")); ok {
		t.Fatal("a rule that was not armed matched")
	}
	if h, ok := in.Feed(ToServer, []byte("t")); !ok || h.Rule != 2 {
		t.Fatalf("armed rule missed: %+v %v", h, ok)
	}
	if in := p.NewInspector(tcpFlow, Verdict{Action: ActionDrop, Rule: 3}); in != nil {
		t.Fatal("inspector for a dropped flow")
	}
	var nilIn *Inspector
	if _, ok := nilIn.Feed(ToServer, []byte("t")); ok || !nilIn.Done() {
		t.Fatal("nil inspector must be inert")
	}
}

func TestFeedAllocs(t *testing.T) {
	p := payloadPolicy(t, 0,
		RuleConfig{Name: "a", Payload: []PayloadConfig{{Contains: "never-present", NoCase: true, Dir: "both"}}, Action: "drop"},
		RuleConfig{Name: "b", Payload: []PayloadConfig{{Contains: "nor-this"}}, Action: "drop"},
	)
	in := inspectorFor(t, p, tcpFlow)
	data := []byte(strings.Repeat("GET / HTTP/1.1\r\nHost: never-presen\r\n", 10))
	n := testing.AllocsPerRun(200, func() {
		in.Feed(ToServer, data)
		in.Feed(ToClient, data)
	})
	if n != 0 {
		t.Fatalf("Feed allocates %v times per run", n)
	}
}
