package policy

import (
	"errors"
	"strings"
	"testing"

	"github.com/tungate/tungate/internal/cfgerr"
)

func errKeys(t *testing.T, err error) []string {
	t.Helper()
	var l cfgerr.List
	if !errors.As(err, &l) {
		t.Fatalf("error %v (%T) is not a cfgerr.List", err, err)
	}
	keys := make([]string, len(l))
	for i, e := range l {
		keys[i] = strings.Join(e.Key, ".")
		if e.Msg == "" {
			t.Errorf("%s: empty message", keys[i])
		}
	}
	return keys
}

func TestCompileErrors(t *testing.T) {
	cfg := Config{
		Defaults: Defaults{Policy: "maybe", Invalid: "nope", RejectWith: "rst", Mode: "loud"},
		Sets: map[string]SetConfig{
			"web":      {Type: "port", Elements: List{int64(80), int64(70000), "9-1", "x", "100-200"}},
			"lan":      {Type: "cidr", Elements: List{"198.18.1.0/24", "198.18.300.0/24", int64(5), "fe80::1%eth0"}},
			"names":    {Type: "domain", Elements: List{"example.org", "*.ok.example", "bad..example", "-x.example"}},
			"weird":    {Type: "bitmap"},
			"untyped":  {},
			"bad name": {Type: "cidr"},
		},
		Rules: []RuleConfig{
			{Name: "ok", Proto: List{"tcp"}, Action: "allow"},          // 0: fine
			{Name: "", Action: ""},                                     // 1
			{Name: "ok", Proto: List{"tcp", "sctp"}, Action: "accept"}, // 2
			{Name: "ports", Proto: List{"tcp"}, DstPort: List{int64(80), int64(-1), "@web", "@lan", "@missing", "1-2-3"}, Action: "allow"},       // 3
			{Name: "ports-no-proto", DstPort: List{80}, SrcPort: List{1}, Action: "allow"},                                                       // 4
			{Name: "ports-icmp", Proto: List{"tcp", "icmp"}, NotDstPort: List{80}, Action: "allow"},                                              // 5
			{Name: "addrs", Src: List{"198.18.1.1", "nonsense", "@web", "@lan"}, Dst: List{"@untyped"}, NotDst: List{true}, Action: "drop"},      // 6
			{Name: "rst-udp", Proto: List{"udp"}, Action: "reject", RejectWith: "tcp-reset"},                                                     // 7
			{Name: "rw-on-allow", Proto: List{"tcp"}, Action: "allow", RejectWith: "tcp-reset"},                                                  // 8
			{Name: "payload", Payload: []PayloadConfig{{Contains: ""}, {Contains: "a", Dir: "up"}, {Contains: "b", Dir: "both"}}, Action: "log"}, // 9
			{Name: "default", Action: "allow"},                                               // 10
			{Name: "proto-any-ports", Proto: List{"any"}, DstPort: List{1}, Action: "allow"}, // 11
			{Name: "proto-type", Proto: List{int64(6)}, DstPort: List{1}, Action: "allow"},   // 12
		},
		Inspect: InspectConfig{MaxBytes: -1},
		Log:     LogConfig{Level: "chatty", Decisions: "some", Rate: "fast"},
	}
	_, err := Compile(cfg)
	got := errKeys(t, err)
	want := []string{
		"defaults.policy", "defaults.invalid", "defaults.reject_with", "defaults.mode",
		"sets.bad name",
		"sets.lan.elements.1", "sets.lan.elements.2", "sets.lan.elements.3",
		"sets.names.elements.2", "sets.names.elements.3",
		"sets.untyped.type",
		"sets.web.elements.1", "sets.web.elements.2", "sets.web.elements.3",
		"sets.weird.type",
		"rule.1.name", "rule.1.action",
		"rule.2.action", "rule.2.proto.1", "rule.2.name",
		"rule.3.dst_port.1", "rule.3.dst_port.3", "rule.3.dst_port.4", "rule.3.dst_port.5",
		"rule.4.src_port", "rule.4.dst_port",
		"rule.5.not_dst_port",
		"rule.6.src.1", "rule.6.src.2", "rule.6.not_dst.0",
		"rule.7.reject_with",
		"rule.8.reject_with",
		"rule.9.payload.0.contains", "rule.9.payload.1.dir", "rule.9.action",
		"rule.10.name",
		"rule.11.dst_port",
		"rule.12.proto.0",
		"inspect.max_bytes",
		"log.level", "log.decisions", "log.rate",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("error keys:\n%s\nwant:\n%s\nerrors:\n%v", strings.Join(got, "\n"), strings.Join(want, "\n"), err)
	}
}

func TestCompileErrorKeyExamples(t *testing.T) {
	// The exact paths promised to the loader.
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "defaults.policy"},
		{Config{Defaults: Defaults{Policy: "drop"}, Rules: []RuleConfig{{Name: "a", Action: "allow"}, {Name: "b", Action: "allow"}, {Name: "c", Action: "allow"},
			{Name: "d", Proto: List{"tcp"}, DstPort: List{80, "99999"}, Action: "allow"}}}, "rule.3.dst_port.1"},
		{Config{Defaults: Defaults{Policy: "drop"}, Rules: []RuleConfig{{Name: "a", Action: "allow"}, {Name: "b", Action: "allow"}, {Name: "c", Action: "allow"},
			{Name: "a", Action: "allow"}}}, "rule.3.name"},
		{Config{Defaults: Defaults{Policy: "drop"}, Sets: map[string]SetConfig{"web": {Type: "port", Elements: List{"http"}}}}, "sets.web.elements.0"},
	} {
		_, err := Compile(tt.cfg)
		got := errKeys(t, err)
		if len(got) != 1 || got[0] != tt.want {
			t.Errorf("keys %v, want [%s]", got, tt.want)
		}
	}
}

func TestCompileAccepts(t *testing.T) {
	p := mustCompile(t, Config{
		Defaults: Defaults{Policy: "reject", Invalid: "reject", RejectWith: "tcp-reset", Mode: "audit"},
		Sets: map[string]SetConfig{
			"d":     {Type: "domain", Elements: List{"Example.ORG.", "*.blocked.example", "a_b.example"}},
			"empty": {Type: "cidr"},
			"p":     {Type: "port", Elements: List{"0-65535", 1, int64(2), "3"}},
		},
		Rules: []RuleConfig{
			{Name: "r", Proto: List{"tcp", "udp"}, Src: List{"@empty", "0.0.0.0/0", "::/0"}, DstPort: List{"@p"}, Action: "reject", RejectWith: "auto"},
			{Name: "x", Proto: List{"tcp"}, Dst: List{"198.18.1.9/24", "::ffff:198.18.2.0/120"}, Action: "reject", RejectWith: "tcp-reset"},
		},
		Inspect: InspectConfig{StreamDepth: 0, StreamDepthSet: true},
		Log:     LogConfig{Level: "debug", Decisions: "all", Rate: "5/m"},
	})
	if p.DefaultAction() != ActionReject || p.InvalidAction() != ActionReject || p.Mode() != ModeAudit {
		t.Errorf("defaults: %v %v %v", p.DefaultAction(), p.InvalidAction(), p.Mode())
	}
	if d, ok := p.Domains("d"); !ok || strings.Join(d, ",") != "example.org,*.blocked.example,a_b.example" {
		t.Errorf("domains = %v, %v", d, ok)
	}
	if _, ok := p.Domains("p"); ok {
		t.Errorf("port set reported as a domain set")
	}
	if p.Inspect().StreamDepth != 0 {
		t.Errorf("explicit stream_depth 0 became %v", p.Inspect().StreamDepth)
	}
	// Host bits are masked, and the IPv4-mapped prefix applies to v4 flows.
	// Under audit the reject is a would-reject and the flow passes.
	if v := p.Decide(flow("tcp", "198.18.0.1:1", "198.18.1.200:5")); v.NAudit == 0 || v.Audit[0].Rule != 0 || v.Action != ActionAllow {
		t.Errorf("any-src rule: %v", v)
	}
	if v := p.Decide(flow("gre", "198.18.0.1", "198.18.2.7")); v.Rule != -1 {
		t.Errorf("gre should miss the tcp rules: %v", v)
	}
}

func TestAccessorDefaults(t *testing.T) {
	p := mustCompile(t, Config{Defaults: Defaults{Policy: "allow"}})
	in := p.Inspect()
	if in.MaxBytes != 16384 || in.Timeout.D().String() != "500ms" || in.StreamDepth != 1<<20 {
		t.Errorf("Inspect() = %+v", in)
	}
	if l := p.Log(); l.Level != "info" || l.Decisions != "drops" || l.Rate != "20/s" {
		t.Errorf("Log() = %+v", l)
	}
	if p.InvalidAction() != ActionDrop || p.Mode() != ModeEnforce || p.DefaultAction() != ActionAllow {
		t.Errorf("defaults wrong")
	}
	if p.RuleNameAt(-1) != "default" || p.RuleNameAt(0) != "" || p.RuleName(0) != "" {
		t.Errorf("names for the default wrong")
	}
}

func TestParseRate(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want float64
		ok   bool
	}{
		{"20/s", 20, true}, {"120/m", 2, true}, {"36/h", 0.01, true}, {" 1/s ", 1, true},
		{"0/s", 0, false}, {"20", 0, false}, {"20/d", 0, false}, {"/s", 0, false},
		{"-1/s", 0, false}, {"+1/s", 0, false}, {"1.5/s", 0, false}, {"", 0, false},
	} {
		got, err := ParseRate(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseRate(%q) = %v, %v", tt.in, got, err)
		}
	}
}

func TestStrings(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{ActionAllow.String(), "allow"}, {ActionDrop.String(), "drop"}, {ActionReject.String(), "reject"},
		{RejectTCPReset.String(), "tcp-reset"}, {RejectICMPPortUnreachable.String(), "icmp-port-unreachable"},
		{ModeAudit.String(), "audit"},
		{Verdict{Action: ActionReject, Reject: RejectTCPReset, Rule: 3, LogRule: -1, Log: true}.String(), "reject/tcp-reset rule=3 log"},
		{Verdict{Action: ActionAllow, Rule: -1, LogRule: 0, Armed: true}.String(), "allow rule=default logrule=0 armed"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}
