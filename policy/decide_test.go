package policy

import "testing"

func decideConfig() Config {
	return Config{
		Defaults: Defaults{Policy: "drop"},
		Sets: map[string]SetConfig{
			"lan":     {Type: "cidr", Elements: List{"198.18.1.0/24", "2001:2:0:1::/64"}},
			"web":     {Type: "port", Elements: List{int64(80), int64(443), "8000-8999"}},
			"blocked": {Type: "cidr", Elements: List{"198.18.9.9", "198.18.10.0/24", "2001:2:0:9::9"}},
		},
		Rules: []RuleConfig{
			{Name: "log-icmp", Proto: List{"icmp", "icmpv6"}, Action: "log"},                                                                                    // 0
			{Name: "block-host", Dst: List{"@blocked"}, Action: "reject"},                                                                                       // 1
			{Name: "web", Proto: List{"tcp"}, Src: List{"@lan"}, DstPort: List{"@web"}, Action: "allow"},                                                        // 2
			{Name: "dns", Proto: List{"udp", "tcp"}, Dst: List{"198.18.2.53", "2001:2::53"}, DstPort: List{53}, Action: "allow", Log: true},                     // 3
			{Name: "ssh-admin-only", Proto: List{"tcp"}, NotSrc: List{"198.18.1.10"}, DstPort: List{22}, Action: "reject", RejectWith: "icmp-port-unreachable"}, // 4
			{Name: "ssh", Proto: List{"tcp"}, DstPort: List{int64(22)}, Action: "allow"},                                                                        // 5
			{Name: "ping", Proto: List{"icmp", "icmpv6"}, Action: "allow"},                                                                                      // 6
			{Name: "high-src", Proto: List{"udp"}, SrcPort: List{"1024-65535"}, NotDstPort: List{"5000-5999"}, NotDst: List{"198.18.3.0/24"}, Action: "allow"},  // 7
			{Name: "udp-reject", Proto: List{"udp"}, Action: "reject"},                                                                                          // 8
			{Name: "v6-any", Proto: List{"any"}, Src: List{"2001:2:0:2::/64"}, Action: "allow"},                                                                 // 9
		},
	}
}

func TestDecide(t *testing.T) {
	p := mustCompile(t, decideConfig())
	type want struct {
		action  Action
		reject  RejectKind
		rule    int
		logRule int
		log     bool
	}
	allow := func(rule int) want { return want{action: ActionAllow, rule: rule, logRule: -1} }
	def := want{action: ActionDrop, rule: -1, logRule: -1, log: true}
	tests := []struct {
		name string
		f    *Flow
		want want
	}{
		{"tcp lan to web port", flow("tcp", "198.18.1.5:40000", "198.18.2.1:443"), allow(2)},
		{"tcp lan to port range", flow("tcp", "198.18.1.5:40000", "198.18.2.1:8500"), allow(2)},
		{"tcp lan range end", flow("tcp", "198.18.1.5:40000", "198.18.2.1:8999"), allow(2)},
		{"tcp lan just past range", flow("tcp", "198.18.1.5:40000", "198.18.2.1:9000"), def},
		{"tcp non-lan to web", flow("tcp", "198.18.5.5:40000", "198.18.2.1:443"), def},
		{"tcp v6 lan to web", flow("tcp", "[2001:2:0:1::5]:40000", "[2001:2::80]:80"), allow(2)},
		{"tcp v6 non-lan to web", flow("tcp", "[2001:2:0:3::5]:40000", "[2001:2::80]:80"), def},
		{"blocked tcp gets reset", flow("tcp", "198.18.1.5:40000", "198.18.9.9:443"), want{ActionReject, RejectTCPReset, 1, -1, true}},
		{"blocked udp gets icmp", flow("udp", "198.18.1.5:40000", "198.18.10.7:53"), want{ActionReject, RejectICMPPortUnreachable, 1, -1, true}},
		{"blocked v6 host", flow("tcp", "[2001:2:0:1::5]:1", "[2001:2:0:9::9]:80"), want{ActionReject, RejectTCPReset, 1, -1, true}},
		{"blocked v6 neighbour passes", flow("tcp", "[2001:2:0:1::5]:1", "[2001:2:0:9::a]:80"), allow(2)},
		{"blocked icmp logs then rejects", flow("icmp", "198.18.1.5", "198.18.9.9"), want{ActionReject, RejectICMPPortUnreachable, 1, 0, true}},
		{"v4-mapped addresses are unmapped", flow("tcp", "[::ffff:198.18.1.5]:1", "[::ffff:198.18.9.9]:80"), want{ActionReject, RejectTCPReset, 1, -1, true}},
		{"dns udp v4 with rule log", flow("udp", "198.18.1.5:40000", "198.18.2.53:53"), want{ActionAllow, 0, 3, -1, true}},
		{"dns tcp v6", flow("tcp", "[2001:2:0:3::5]:40000", "[2001:2::53]:53"), want{ActionAllow, 0, 3, -1, true}},
		{"dns wrong host falls to high-src", flow("udp", "198.18.1.5:40000", "198.18.2.54:53"), allow(7)},
		{"ssh non-admin rejected with icmp", flow("tcp", "198.18.1.5:40000", "198.18.2.1:22"), want{ActionReject, RejectICMPPortUnreachable, 4, -1, true}},
		{"ssh admin allowed", flow("tcp", "198.18.1.10:40000", "198.18.2.1:22"), allow(5)},
		{"ping v4 logged", flow("icmp", "198.18.1.5", "198.18.2.1"), want{ActionAllow, 0, 6, 0, false}},
		{"ping v6 logged", flow("icmpv6", "2001:2:0:1::5", "2001:2::1"), want{ActionAllow, 0, 6, 0, false}},
		{"udp low src port", flow("udp", "198.18.1.5:1000", "198.18.2.1:9999"), want{ActionReject, RejectICMPPortUnreachable, 8, -1, true}},
		{"udp src port range start", flow("udp", "198.18.1.5:1024", "198.18.2.1:9999"), allow(7)},
		{"udp not_dst_port", flow("udp", "198.18.1.5:40000", "198.18.2.1:5500"), want{ActionReject, RejectICMPPortUnreachable, 8, -1, true}},
		{"udp not_dst", flow("udp", "198.18.1.5:40000", "198.18.3.4:9999"), want{ActionReject, RejectICMPPortUnreachable, 8, -1, true}},
		{"other proto v6 any", flow("gre", "2001:2:0:2::1", "2001:2::1"), allow(9)},
		{"other proto v4 default", flow("gre", "198.18.1.5", "198.18.2.1"), def},
		{"other proto blocked", flow("gre", "198.18.1.5", "198.18.9.9"), want{ActionReject, RejectICMPPortUnreachable, 1, -1, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := p.Decide(tt.f)
			got := want{v.Action, v.Reject, v.Rule, v.LogRule, v.Log}
			if got != tt.want {
				t.Fatalf("Decide = %v, want %+v", v, tt.want)
			}
			if v.Armed {
				t.Errorf("Armed without payload rules")
			}
			wantID := uint32(0)
			if v.Rule >= 0 {
				wantID = internName(p.RuleNameAt(v.Rule))
			}
			if v.RuleID != wantID {
				t.Errorf("RuleID = %d, want %d", v.RuleID, wantID)
			}
		})
	}
}

func TestDecideLogDecisions(t *testing.T) {
	for _, tt := range []struct {
		decisions           string
		allowLog, allowLogR bool // allow by plain rule, allow by log=true rule
		dropLog             bool
	}{
		{"", false, true, true},
		{"drops", false, true, true},
		{"none", false, true, false},
		{"all", true, true, true},
	} {
		cfg := Config{
			Defaults: Defaults{Policy: "drop"},
			Rules: []RuleConfig{
				{Name: "a", Proto: List{"tcp"}, DstPort: List{1}, Action: "allow"},
				{Name: "b", Proto: List{"tcp"}, DstPort: List{2}, Action: "allow", Log: true},
			},
			Log: LogConfig{Decisions: tt.decisions},
		}
		p := mustCompile(t, cfg)
		if got := p.Decide(flow("tcp", "198.18.0.1:9", "198.18.0.2:1")).Log; got != tt.allowLog {
			t.Errorf("decisions=%q: allow Log = %v", tt.decisions, got)
		}
		if got := p.Decide(flow("tcp", "198.18.0.1:9", "198.18.0.2:2")).Log; got != tt.allowLogR {
			t.Errorf("decisions=%q: allow log=true Log = %v", tt.decisions, got)
		}
		if got := p.Decide(flow("tcp", "198.18.0.1:9", "198.18.0.2:3")).Log; got != tt.dropLog {
			t.Errorf("decisions=%q: default drop Log = %v", tt.decisions, got)
		}
	}
}

func TestDecideDefaultReject(t *testing.T) {
	for _, tt := range []struct {
		with          string
		tcp, udp, gre RejectKind
	}{
		{"", RejectTCPReset, RejectICMPPortUnreachable, RejectICMPPortUnreachable},
		{"auto", RejectTCPReset, RejectICMPPortUnreachable, RejectICMPPortUnreachable},
		{"tcp-reset", RejectTCPReset, RejectICMPPortUnreachable, RejectICMPPortUnreachable},
		{"icmp-port-unreachable", RejectICMPPortUnreachable, RejectICMPPortUnreachable, RejectICMPPortUnreachable},
	} {
		p := mustCompile(t, Config{Defaults: Defaults{Policy: "reject", RejectWith: tt.with}})
		for _, c := range []struct {
			f    *Flow
			want RejectKind
		}{
			{flow("tcp", "198.18.0.1:1", "198.18.0.2:2"), tt.tcp},
			{flow("udp", "198.18.0.1:1", "198.18.0.2:2"), tt.udp},
			{flow("gre", "198.18.0.1", "198.18.0.2"), tt.gre},
		} {
			v := p.Decide(c.f)
			if v.Action != ActionReject || v.Reject != c.want || v.Rule != -1 || v.RuleID != 0 {
				t.Errorf("reject_with=%q proto %d: %v, want reject/%v", tt.with, c.f.Proto, v, c.want)
			}
		}
	}
}

func TestDecidePayloadArming(t *testing.T) {
	cfg := Config{
		Defaults: Defaults{Policy: "allow"},
		Rules: []RuleConfig{
			{Name: "no-jndi", Proto: List{"tcp"}, Payload: []PayloadConfig{{Contains: "${jndi:", NoCase: true}}, Action: "reject"}, // 0
			{Name: "note", Proto: List{"tcp"}, DstPort: List{80, 81}, Action: "log"},                                               // 1
			{Name: "web", Proto: List{"tcp"}, DstPort: List{80}, Action: "allow"},                                                  // 2
			{Name: "no-81", Proto: List{"tcp"}, DstPort: List{81}, Action: "drop"},                                                 // 3
			{Name: "late-payload", Proto: List{"udp"}, Payload: []PayloadConfig{{Contains: "x"}}, Action: "drop"},                  // 4
		},
	}
	p := mustCompile(t, cfg)
	for _, tt := range []struct {
		name                 string
		f                    *Flow
		action               Action
		rule, logRule        int
		armed, wantInspector bool
	}{
		{"allowed flow is armed", flow("tcp", "198.18.0.1:1", "198.18.0.2:80"), ActionAllow, 2, 1, true, true},
		{"dropped flow is not armed", flow("tcp", "198.18.0.1:1", "198.18.0.2:81"), ActionDrop, 3, 1, false, false},
		{"default allow is armed", flow("tcp", "198.18.0.1:1", "198.18.0.2:82"), ActionAllow, -1, -1, true, true},
		{"udp payload rule after nothing", flow("udp", "198.18.0.1:1", "198.18.0.2:82"), ActionAllow, -1, -1, true, true},
		{"icmp never armed", flow("icmp", "198.18.0.1", "198.18.0.2"), ActionAllow, -1, -1, false, false},
	} {
		v := p.Decide(tt.f)
		if v.Action != tt.action || v.Rule != tt.rule || v.LogRule != tt.logRule || v.Armed != tt.armed {
			t.Errorf("%s: %v", tt.name, v)
		}
		if in := p.NewInspector(tt.f, v); (in != nil) != tt.wantInspector {
			t.Errorf("%s: NewInspector = %v, want inspector %v", tt.name, in, tt.wantInspector)
		}
	}
}

func TestDecideAllocs(t *testing.T) {
	p := mustCompile(t, decideConfig())
	flows := []*Flow{
		flow("tcp", "198.18.1.5:40000", "198.18.2.1:443"),
		flow("udp", "[2001:2:0:1::5]:40000", "[2001:2::53]:53"),
		flow("icmp", "198.18.1.5", "198.18.9.9"),
		flow("gre", "198.18.1.5", "198.18.2.1"),
	}
	n := testing.AllocsPerRun(200, func() {
		for _, f := range flows {
			_ = p.Decide(f)
		}
	})
	if n != 0 {
		t.Fatalf("Decide allocates %v times per run", n)
	}
}
