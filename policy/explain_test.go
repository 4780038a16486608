package policy

import (
	"strings"
	"testing"
)

func TestExplain(t *testing.T) {
	p := mustCompile(t, Config{
		Defaults: Defaults{Policy: "drop"},
		Sets:     map[string]SetConfig{"lan": {Type: "cidr", Elements: List{"198.18.1.0/24"}}},
		Rules: []RuleConfig{
			{Name: "udp-only", Proto: List{"udp"}, Action: "allow"},                                                             // 0
			{Name: "web", Proto: List{"tcp"}, DstPort: List{80, 443}, Action: "allow"},                                          // 1
			{Name: "lan-only", Proto: List{"tcp"}, Src: List{"@lan"}, DstPort: List{22}, Action: "allow"},                       // 2
			{Name: "note", Proto: List{"tcp"}, Action: "log"},                                                                   // 3
			{Name: "jndi", Proto: List{"tcp"}, Payload: []PayloadConfig{{Contains: "${jndi:", NoCase: true}}, Action: "reject"}, // 4
			{Name: "ssh-any", Proto: List{"tcp"}, DstPort: List{22}, Action: "allow"},                                           // 5
			{Name: "after", Action: "drop"},                                                                                     // 6
		},
	})
	f := flow("tcp", "198.18.5.5:40000", "198.18.2.1:22")
	tr := p.Explain(f, nil)
	want := []struct {
		why     string
		decides bool
	}{
		{"proto tcp not in [udp]", false},
		{"dst_port 22 not in [80, 443]", false},
		{"src 198.18.5.5 not in [@lan]", false},
		{"matched: logged", false},
		{"payload patterns armed (no --payload given)", false},
		{"all conditions hold", true},
		{`not evaluated: "ssh-any" decided first`, false},
	}
	if len(tr) != len(want) {
		t.Fatalf("traces %+v", tr)
	}
	for i, w := range want {
		if !strings.Contains(tr[i].Why, w.why) || tr[i].Decides != w.decides {
			t.Errorf("trace %d = %+v, want %q decides=%v", i, tr[i], w.why, w.decides)
		}
	}
	if v := p.Decide(f); v.Rule != 5 {
		t.Errorf("Explain disagrees with Decide: %v", v)
	}

	tr = p.Explain(f, []byte("GET /${JNDI:ldap://x} HTTP/1.1"))
	if !tr[4].Decides || tr[5].Decides || tr[4].Action != "reject/tcp-reset" {
		t.Errorf("payload should decide: %+v / %+v", tr[4], tr[5])
	}
	tr = p.Explain(f, []byte("harmless"))
	if tr[4].Decides || !strings.Contains(tr[4].Why, "no pattern found") {
		t.Errorf("harmless payload: %+v", tr[4])
	}

	tr = p.Explain(flow("icmp", "198.18.1.1", "198.18.2.1"), nil)
	last := tr[len(tr)-1]
	if tr[6].Why != "all conditions hold" || !tr[6].Decides || last.Rule != 6 {
		t.Errorf("icmp: %+v", tr)
	}
	q := mustCompile(t, Config{Defaults: Defaults{Policy: "reject"}})
	tr = q.Explain(flow("udp", "198.18.1.1:1", "198.18.2.1:2"), nil)
	if len(tr) != 1 || tr[0].Rule != -1 || tr[0].Action != "reject/icmp-port-unreachable" || !tr[0].Decides {
		t.Errorf("default: %+v", tr)
	}
}

func TestShadowed(t *testing.T) {
	p := mustCompile(t, Config{
		Defaults: Defaults{Policy: "drop"},
		Sets: map[string]SetConfig{
			"lan": {Type: "cidr", Elements: List{"198.18.0.0/16"}},
			"ban": {Type: "cidr", Dynamic: true, Timeout: 1e9, MaxElements: 1},
		},
		Rules: []RuleConfig{
			{Name: "web", Proto: List{"tcp"}, Src: List{"@lan"}, DstPort: List{"80-443"}, Action: "allow"},            // 0
			{Name: "web-sub", Proto: List{"tcp"}, Src: List{"198.18.4.0/24"}, DstPort: List{80}, Action: "drop"},      // 1 shadowed by 0
			{Name: "web-wider", Proto: List{"tcp", "udp"}, Src: List{"@lan"}, DstPort: List{80}, Action: "drop"},      // 2 not: udp
			{Name: "logger", Proto: List{"udp"}, Action: "log"},                                                       // 3
			{Name: "udp-after-log", Proto: List{"udp"}, DstPort: List{53}, Action: "allow"},                           // 4 not: log is not terminal
			{Name: "audit-all", Mode: "audit", Action: "drop"},                                                        // 5
			{Name: "limited", Proto: List{"udp"}, Limit: &LimitConfig{Rate: "1/s"}, Action: "drop"},                   // 6
			{Name: "under-limited", Proto: List{"udp"}, DstPort: List{9}, Action: "drop"},                             // 7 not: 6 has a limit
			{Name: "dyn", Src: List{"@ban"}, Action: "drop"},                                                          // 8
			{Name: "dyn-again", Src: List{"@ban"}, Proto: List{"tcp"}, Action: "drop"},                                // 9 not: dynamic
			{Name: "not-ssh", Proto: List{"tcp"}, NotDstPort: List{22}, Action: "allow"},                              // 10
			{Name: "not-ssh-telnet", Proto: List{"tcp"}, NotDstPort: List{22, 23}, Src: List{"::/0"}, Action: "drop"}, // 11 shadowed by 10
			{Name: "ssh", Proto: List{"tcp"}, DstPort: List{22}, Action: "allow"},                                     // 12 not
			{Name: "catch-all", Action: "drop"},                                                                       // 13
			{Name: "never", Proto: List{"icmp"}, Action: "allow"},                                                     // 14 shadowed by 13
		},
	})
	var got []string
	for _, s := range p.Shadowed() {
		got = append(got, s.RuleName+"<"+s.ByName)
	}
	want := "web-sub<web not-ssh-telnet<not-ssh never<catch-all"
	if strings.Join(got, " ") != want {
		t.Errorf("shadowed = %v, want %s", got, want)
	}
	s := p.Summary()
	if s.Rules != 15 || len(s.Sets) != 2 || !s.Sets[0].Dynamic || s.Sets[1].Size != 1 || len(s.AuditRules) != 1 || len(s.Limits) != 1 {
		t.Errorf("summary %+v", s)
	}
}
