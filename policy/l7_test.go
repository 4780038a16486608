package policy

import (
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/tungate/tungate/internal/cfgerr"
	"github.com/tungate/tungate/policy/l7"
)

// clientHello returns the first flight crypto/tls sends for serverName.
func clientHello(t testing.TB, serverName string) []byte {
	t.Helper()
	c, s := net.Pipe()
	done := make(chan struct{})
	go func() { // ends when s is closed below and the handshake fails
		defer close(done)
		_ = tls.Client(c, &tls.Config{ServerName: serverName, InsecureSkipVerify: serverName == ""}).Handshake()
		c.Close()
	}()
	defer func() { s.Close(); <-done }()
	var hdr [5]byte
	if _, err := io.ReadFull(s, hdr[:]); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, binary.BigEndian.Uint16(hdr[3:]))
	if _, err := io.ReadFull(s, body); err != nil {
		t.Fatal(err)
	}
	return append(hdr[:], body...)
}

func sm(kind string, vals ...any) *StringMatch {
	m := &StringMatch{}
	switch kind {
	case "exact":
		m.Exact = vals
	case "suffix":
		m.Suffix = vals
	case "prefix":
		m.Prefix = vals
	case "keyword":
		m.Keyword = vals
	case "regex":
		m.Regex = vals
	case "absent":
		m.Absent = true
	}
	return m
}

func TestStringMatchers(t *testing.T) {
	sets := map[string]SetConfig{"ads": {Type: "domain", Elements: List{"ads.example", "*.track.example"}}}
	cases := []struct {
		name  string
		m     *StringMatch
		isDom bool
		val   string
		abs   bool // the field is absent
		want  bool
	}{
		{"exact", sm("exact", "a.example"), true, "a.example", false, true},
		{"exact-normalized-config", sm("exact", "A.Example."), true, "a.example", false, true},
		{"exact-not-sub", sm("exact", "a.example"), true, "b.a.example", false, false},
		{"suffix-self", sm("suffix", "blocked.example"), true, "blocked.example", false, true},
		{"suffix-sub", sm("suffix", "blocked.example"), true, "x.y.blocked.example", false, true},
		{"suffix-label-aware", sm("suffix", "blocked.example"), true, "notblocked.example", false, false},
		{"suffix-leading-dot", sm("suffix", ".blocked.example"), true, "x.blocked.example", false, true},
		{"suffix-list-or", sm("suffix", "a.example", "b.example"), true, "w.b.example", false, true},
		{"suffix-set", sm("suffix", "@ads"), true, "x.ads.example", false, true},
		{"suffix-set-star-only-sub", sm("suffix", "@ads"), true, "track.example", false, false},
		{"suffix-set-star", sm("suffix", "@ads"), true, "a.track.example", false, true},
		{"exact-set", sm("exact", "@ads"), true, "ads.example", false, true},
		{"prefix", sm("prefix", "www."), true, "www.example", false, true},
		{"prefix-no", sm("prefix", "www."), true, "ww.example", false, false},
		{"prefix-config-lowered", sm("prefix", "WWW."), true, "www.example", false, true},
		{"keyword", sm("keyword", "casino"), true, "best-casino.example", false, true},
		{"keyword-no", sm("keyword", "casino"), true, "casin.example", false, false},
		{"regex", sm("regex", `^[a-z]+\d+\.example$`), true, "abc12.example", false, true},
		{"regex-no", sm("regex", `^[a-z]+\d+\.example$`), true, "abc.example", false, false},
		{"absent-matches-absent", sm("absent"), true, "", true, true},
		{"absent-not-present", sm("absent"), true, "a.example", false, false},
		{"present-rule-absent-field", sm("suffix", "example"), true, "", true, false},
		{"path-suffix-plain", sm("suffix", ".php"), false, "/index.php", false, true},
		{"path-exact-case", sm("exact", "/Admin"), false, "/admin", false, false},
		{"path-prefix", sm("prefix", "/admin/"), false, "/admin/x", false, true},
		{"method-exact", sm("exact", "POST", "PUT"), false, "PUT", false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := mustCompile(t, Config{Defaults: Defaults{Policy: "allow"}, Sets: sets})
			var errs cfgerr.List
			m := p.compileStrMatch(tc.m, tc.isDom, []string{"x"}, &errs)
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			if got := m.match([]byte(tc.val), !tc.abs); got != tc.want {
				t.Errorf("match(%q, present=%v) = %v, want %v", tc.val, !tc.abs, got, tc.want)
			}
		})
	}
}

// l7Policy: the rules given, then allow-all-else by default.
func l7Policy(t testing.TB, inspect InspectConfig, rules ...RuleConfig) *Policy {
	t.Helper()
	return mustCompile(t, Config{
		Defaults: Defaults{Policy: "allow"},
		Sets:     map[string]SetConfig{"bad": {Type: "domain", Elements: List{"bad.example"}}},
		Rules:    rules, Inspect: inspect,
	})
}

var tlsFlow = flow("tcp", "198.18.1.5:40000", "198.18.2.1:443")

func TestPendingResumeSNI(t *testing.T) {
	p := l7Policy(t, InspectConfig{},
		RuleConfig{Name: "ssh", Proto: List{"tcp"}, DstPort: List{22}, Action: "allow"},
		RuleConfig{Name: "block-sni", Proto: List{"tcp"}, DstPort: List{443}, TLS: &TLSMatch{SNI: sm("suffix", "@bad", "Blocked.Example.")}, Action: "reject"},
		RuleConfig{Name: "web", Proto: List{"tcp"}, DstPort: List{443}, Action: "allow"},
	)
	// A rule before the L7 rule that matches on L3/L4 decides at once.
	if v := p.Decide(flow("tcp", "198.18.1.5:40000", "198.18.2.1:22")); v.Pending || v.Rule != 0 {
		t.Fatalf("ssh flow: %v", v)
	}
	v := p.Decide(tlsFlow)
	if !v.Pending || v.Rule != 1 || v.Action != ActionAllow || v.Need != NeedSNI {
		t.Fatalf("Decide = %v need=%b, want pending at rule 1 needing SNI", v, v.Need)
	}
	for _, tc := range []struct {
		sni      string
		rule     int
		act      Action
		wantVal  string
		wantFld  L7Field
		noFields bool
	}{
		{"www.blocked.example", 1, ActionReject, "www.blocked.example", FieldSNI, false},
		{"WWW.Bad.Example.", 1, ActionReject, "www.bad.example", FieldSNI, false},
		{"good.example", 2, ActionAllow, "", FieldNone, false},
		{"", 2, ActionAllow, "", FieldNone, false}, // no server_name: absent
		{"", 2, ActionAllow, "", FieldNone, true},  // nothing arrived
	} {
		x := p.NewL7Extractor(v)
		if x == nil {
			t.Fatal("no extractor for a pending verdict")
		}
		var fields *L7Fields
		if !tc.noFields {
			hello := clientHello(t, strings.ToLower(strings.TrimSuffix(tc.sni, ".")))
			// Split the hello to exercise reassembly.
			if x.Feed(hello[:7]) {
				t.Fatal("done after 7 bytes")
			}
			if !x.Feed(hello[7:]) {
				t.Fatal("not done after the whole hello")
			}
			fields = x.Fields()
		}
		got := p.Resume(tlsFlow, v, fields)
		if got.Pending || got.Rule != tc.rule || got.Action != tc.act || got.Value != tc.wantVal || got.Field != tc.wantFld {
			t.Errorf("sni %q: Resume = %v, want rule %d %v value %q", tc.sni, got, tc.rule, tc.act, tc.wantVal)
		}
		if tc.act == ActionReject && got.Reject != RejectTCPReset {
			t.Errorf("sni %q: reject kind %v", tc.sni, got.Reject)
		}
	}
}

func TestResumeKeepsEarlierEffects(t *testing.T) {
	p := l7Policy(t, InspectConfig{},
		RuleConfig{Name: "note", Proto: List{"tcp"}, Action: "log"},
		RuleConfig{Name: "aud", Proto: List{"tcp"}, Action: "drop", Mode: "audit"},
		RuleConfig{Name: "jndi", Proto: List{"tcp"}, Payload: []PayloadConfig{{Contains: "${jndi:"}}, Action: "reject"},
		RuleConfig{Name: "host", Proto: List{"tcp"}, HTTP: &HTTPMatch{Host: sm("exact", "a.example")}, Action: "allow"},
		RuleConfig{Name: "rest", Proto: List{"tcp"}, Action: "drop"},
	)
	f := flow("tcp", "198.18.1.5:40000", "198.18.2.1:80")
	v := p.Decide(f)
	if !v.Pending || v.Rule != 3 || v.LogRule != 0 || v.NAudit != 1 || !v.Armed {
		t.Fatalf("Decide = %v", v)
	}
	got := p.Resume(f, v, &L7Fields{Proto: L7HTTP, Host: []byte("A.example"), Method: []byte("GET"), Path: []byte("/")})
	if got.Rule != 3 || got.Action != ActionAllow || got.LogRule != 0 || got.NAudit != 1 || !got.Armed || got.Value != "a.example" {
		t.Fatalf("Resume = %v", got)
	}
	if in := p.NewInspector(f, got); in == nil || in.http == nil || len(in.rules) != 1 {
		t.Fatalf("inspector for the resumed flow: %+v", in)
	}
	got = p.Resume(f, v, &L7Fields{Proto: L7HTTP, Host: []byte("b.example")})
	if got.Rule != 4 || got.Action != ActionDrop || got.Field != FieldNone {
		t.Fatalf("Resume other host = %v", got)
	}
}

func TestOnIncomplete(t *testing.T) {
	rules := []RuleConfig{
		{Name: "block", Proto: List{"tcp"}, TLS: &TLSMatch{SNI: sm("suffix", "bad.example")}, Action: "reject"},
		{Name: "no-sni", Proto: List{"tcp"}, DstPort: List{8443}, TLS: &TLSMatch{SNI: sm("absent")}, Action: "drop"},
	}
	hello := clientHello(t, "bad.example")
	for _, tc := range []struct {
		mode  string
		feed  []byte
		want  Action
		rule  int
		flag  bool
		dport uint16
	}{
		{"", hello[:20], ActionDrop, 0, true, 443},            // the default is drop: incomplete is not absent
		{"no-match", hello[:20], ActionAllow, -1, false, 443}, // no-match: absent, nothing matches
		{"drop", hello[:20], ActionDrop, 0, true, 443},        // dropped at the pending rule
		{"drop", nil, ActionAllow, -1, false, 443},            // nothing sent: server-first, not incomplete
		{"drop", hello, ActionReject, 0, false, 443},          // complete
		{"no-match", nil, ActionDrop, 1, false, 8443},         // absent = true matches an absent SNI
		{"no-match", hello[:9], ActionDrop, 1, false, 8443},   // incomplete counts as absent
	} {
		p := l7Policy(t, InspectConfig{OnIncomplete: tc.mode}, rules...)
		f := flow("tcp", "198.18.1.5:40000", "198.18.2.1:443")
		f.DstPort = tc.dport
		v := p.Decide(f)
		x := p.NewL7Extractor(v)
		if tc.feed != nil {
			x.Feed(tc.feed)
		}
		got := p.Resume(f, v, x.Fields()) // the timeout fired
		if got.Action != tc.want || got.Rule != tc.rule || got.Incomplete != tc.flag {
			t.Errorf("mode %q feed %d bytes port %d: %v incomplete=%v, want %v rule %d", tc.mode, len(tc.feed), tc.dport, got, got.Incomplete, tc.want, tc.rule)
		}
	}
}

func TestExtractorMaxBytes(t *testing.T) {
	p := l7Policy(t, InspectConfig{MaxBytes: 100},
		RuleConfig{Name: "h", Proto: List{"tcp"}, HTTP: &HTTPMatch{Host: sm("exact", "a.example")}, Action: "drop"})
	v := p.Decide(tcpFlow)
	x := p.NewL7Extractor(v)
	if x.Feed([]byte("GET / HTTP/1.1\r\nUser-Agent: " + strings.Repeat("x", 40))) {
		t.Fatal("done before max_bytes")
	}
	if !x.Feed([]byte(strings.Repeat("y", 100) + "\r\nHost: a.example\r\n\r\n")) {
		t.Fatal("not done at max_bytes")
	}
	if x.Fed() != 100 || !x.Fields().Incomplete {
		t.Fatalf("fed %d fields %+v", x.Fed(), x.Fields())
	}
	// A server-first flow: a non-HTTP, non-TLS first byte ends it at once.
	x = p.NewL7Extractor(v)
	if !x.Feed([]byte("\x00\x01")) || x.Fields().Incomplete || x.Fields().Proto != L7Unknown {
		t.Fatalf("binary stream: %+v", x.Fields())
	}
}

func TestHTTPPipelinedSecondRequestBlocked(t *testing.T) {
	for _, rw := range []string{"", "http-403"} {
		p := l7Policy(t, InspectConfig{},
			RuleConfig{Name: "no-admin", Proto: List{"tcp"}, HTTP: &HTTPMatch{Path: sm("prefix", "/admin")}, Action: "reject", RejectWith: rw},
			RuleConfig{Name: "bad-host", Proto: List{"tcp"}, HTTP: &HTTPMatch{Host: sm("suffix", "@bad")}, Action: "drop"},
		)
		f := flow("tcp", "198.18.1.5:40000", "198.18.2.1:80")
		v := p.Decide(f)
		first := "GET /index.html HTTP/1.1\r\nHost: ok.example\r\nContent-Length: 5\r\n\r\nhello"
		second := "GET /admin/users HTTP/1.1\r\nHost: ok.example\r\n\r\n"
		x := p.NewL7Extractor(v)
		buf := []byte(first + second) // both in the first segment
		if !x.Feed(buf) {
			t.Fatal("extractor not done")
		}
		got := p.Resume(f, v, x.Fields())
		if got.Action != ActionAllow || !got.Armed {
			t.Fatalf("first request: %v", got)
		}
		in := p.NewInspector(f, got)
		// The stack feeds the inspector everything from byte 0.
		h, ok := in.Feed(ToServer, buf[:30])
		if ok {
			t.Fatalf("hit in the first request: %+v", h)
		}
		h, ok = in.Feed(ToServer, buf[30:])
		want := RejectTCPReset
		if rw == "http-403" {
			want = RejectHTTP403
		}
		if !ok || h.Rule != 0 || h.Action != ActionReject || h.Reject != want || h.Field != FieldHTTPPath || h.Value != "/admin/users" {
			t.Fatalf("reject_with %q: second request hit = %+v %v", rw, h, ok)
		}
		if !in.Done() {
			t.Error("inspector not done after a refusal")
		}

		// Keep-alive: a third request in a later segment, with a bad host.
		in = p.NewInspector(f, got)
		in.Feed(ToServer, []byte(first))
		if h, ok := in.Feed(ToServer, []byte("GET / HTTP/1.1\r\nHost: WWW.BAD.EXAMPLE:8080\r\n\r\n")); !ok || h.Rule != 1 || h.Value != "www.bad.example" || h.Field != FieldHTTPHost {
			t.Fatalf("keep-alive bad host: %+v %v", h, ok)
		}
	}
}

func TestHTTPBrokenFramingDecidedAbsent(t *testing.T) {
	p := l7Policy(t, InspectConfig{},
		RuleConfig{Name: "ok-host", Proto: List{"tcp"}, HTTP: &HTTPMatch{Host: sm("exact", "ok.example")}, Action: "allow"},
		RuleConfig{Name: "rest", Proto: List{"tcp"}, DstPort: List{80}, Action: "drop"},
	)
	f := flow("tcp", "198.18.1.5:40000", "198.18.2.1:80")
	v := p.Decide(f)
	got := p.Resume(f, v, &L7Fields{Proto: L7HTTP, Host: []byte("ok.example"), Method: []byte("GET"), Path: []byte("/")})
	in := p.NewInspector(f, got)
	in.Feed(ToServer, []byte("GET / HTTP/1.1\r\nHost: ok.example\r\n\r\n"))
	// A smuggling attempt: both Content-Length and Transfer-Encoding.
	h, ok := in.Feed(ToServer, []byte("POST / HTTP/1.1\r\nHost: ok.example\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"))
	if !ok || h.Rule != 1 || h.Action != ActionDrop {
		t.Fatalf("broken framing: %+v %v", h, ok)
	}
}

func TestDecideDNS(t *testing.T) {
	p := l7Policy(t, InspectConfig{},
		RuleConfig{Name: "corp", Proto: List{"udp", "tcp"}, DstPort: List{53}, DNS: &DNSMatch{QName: sm("suffix", "corp.example")}, Action: "allow"},
		RuleConfig{Name: "ads", Proto: List{"udp", "tcp"}, DstPort: List{53}, DNS: &DNSMatch{QName: sm("suffix", "@bad")}, Action: "reject"},
		RuleConfig{Name: "silent", Proto: List{"udp"}, DstPort: List{53}, DNS: &DNSMatch{QName: sm("exact", "quiet.example")}, Action: "drop", Log: true},
		RuleConfig{Name: "other-dns", Proto: List{"udp"}, DstPort: List{53}, Action: "drop"},
	)
	f := flow("udp", "198.18.1.5:40000", "198.18.2.1:53")
	v := p.Decide(f)
	if !v.Pending || v.Need != NeedDNS || v.Rule != 0 || v.Action != ActionAllow {
		t.Fatalf("Decide = %v need %b", v, v.Need)
	}
	if x := p.NewL7Extractor(v); x != nil {
		t.Fatal("extractor for a DNS flow")
	}
	for _, tc := range []struct {
		name   string
		rule   int
		act    Action
		reject RejectKind
		value  string
	}{
		{"www.CORP.Example.", 0, ActionAllow, RejectNone, ""},
		{"x.Bad.Example", 1, ActionReject, RejectDNSNXDomain, "x.bad.example"},
		{"bad.example.", 1, ActionReject, RejectDNSNXDomain, "bad.example"},
		{"QUIET.example", 2, ActionDrop, RejectNone, "quiet.example"},
		{"elsewhere.example", 3, ActionDrop, RejectNone, ""},
	} {
		msg := dnsQuery(t, tc.name)
		q, err := l7.ParseQuery(msg)
		if err != nil {
			t.Fatal(err)
		}
		d := p.DecideDNS(f, v, &q)
		if d.Rule != tc.rule || d.Action != tc.act || d.Reject != tc.reject || d.Value != tc.value {
			t.Errorf("%s: %v reject=%v value %q, want rule %d %v %v %q", tc.name, d, d.Reject, d.Value, tc.rule, tc.act, tc.reject, tc.value)
		}
		if tc.reject == RejectDNSNXDomain {
			if _, err := l7.NXDomain(msg, make([]byte, 0, 512)); err != nil {
				t.Errorf("NXDomain: %v", err)
			}
		}
	}
	if d := p.DecideDNS(f, v, nil); d.Rule != 3 {
		t.Errorf("not a query: %v", d)
	}
	q, _ := l7.ParseQuery(dnsQuery(t, "www.corp.example"))
	if n := testing.AllocsPerRun(100, func() { p.DecideDNS(f, v, &q) }); n != 0 {
		t.Errorf("DecideDNS of an allowed query allocates %v", n)
	}
}

// dnsQuery builds a one-question A query for name as written.
func dnsQuery(t testing.TB, name string) []byte {
	t.Helper()
	b := []byte{0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0}
	for _, l := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	return append(b, 0, 0, 1, 0, 1)
}

func TestL7CompileErrors(t *testing.T) {
	cases := []struct {
		rc   RuleConfig
		key  string
		want string
	}{
		{RuleConfig{Name: "a", TLS: &TLSMatch{SNI: sm("suffix", "x.example")}, Action: "drop"}, "rule.0.proto", `needs proto = "tcp"`},
		{RuleConfig{Name: "a", Proto: List{"tcp"}, TLS: &TLSMatch{SNI: &StringMatch{}}, Action: "drop"}, "rule.0.tls.sni", "needs at least one of"},
		{RuleConfig{Name: "a", Proto: List{"tcp"}, TLS: &TLSMatch{SNI: sm("suffix", "@nope")}, Action: "drop"}, "rule.0.tls.sni.suffix.0", `unknown set "nope"`},
		{RuleConfig{Name: "a", Proto: List{"tcp"}, TLS: &TLSMatch{SNI: sm("suffix", "bad..x")}, Action: "drop"}, "rule.0.tls.sni.suffix.0", "invalid domain suffix"},
		{RuleConfig{Name: "a", Proto: List{"tcp"}, HTTP: &HTTPMatch{Path: sm("regex", "(")}, Action: "drop"}, "rule.0.http.path.regex.0", "invalid regex"},
		{RuleConfig{Name: "a", Proto: List{"tcp"}, HTTP: &HTTPMatch{Path: sm("suffix", "@bad")}, Action: "drop"}, "rule.0.http.path.suffix.0", "domain sets can only"},
		{RuleConfig{Name: "a", Proto: List{"tcp"}, TLS: &TLSMatch{SNI: sm("absent")}, HTTP: &HTTPMatch{Host: sm("absent")}, Action: "drop"}, "rule.0.http", "cannot be combined with tls"},
		{RuleConfig{Name: "a", Proto: List{"tcp"}, TLS: &TLSMatch{SNI: sm("absent")}, Action: "reject", RejectWith: "http-403"}, "rule.0.reject_with", "needs an http"},
		{RuleConfig{Name: "a", Proto: List{"udp"}, DNS: &DNSMatch{QName: sm("absent")}, Action: "reject", RejectWith: "icmp-port-unreachable"}, "rule.0.reject_with", "dns-nxdomain"},
		{RuleConfig{Name: "a", Proto: List{"tcp"}, Action: "reject", RejectWith: "dns-nxdomain"}, "rule.0.reject_with", "needs a dns.qname"},
		{RuleConfig{Name: "a", DNS: &DNSMatch{QName: sm("absent")}, Action: "drop"}, "rule.0.proto", `limited to "udp" and/or "tcp"`},
		{RuleConfig{Name: "a", Proto: List{"tcp"}, TLS: &TLSMatch{SNI: sm("absent")}, Limit: &LimitConfig{Rate: "1/s"}, Action: "drop"}, "rule.0.limit", "cannot be combined"},
	}
	for _, tc := range cases {
		_, err := Compile(Config{Defaults: Defaults{Policy: "allow"}, Sets: map[string]SetConfig{"bad": {Type: "domain", Elements: List{"bad.example"}}}, Rules: []RuleConfig{tc.rc}})
		if err == nil {
			t.Errorf("%s: compiled", tc.key)
			continue
		}
		found := false
		for _, e := range err.(cfgerr.List) {
			if strings.Join(e.Key, ".") == tc.key && strings.Contains(e.Msg, tc.want) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: want %q, got %v", tc.key, tc.want, err)
		}
	}
	if _, err := Compile(Config{Defaults: Defaults{Policy: "allow", RejectWith: "http-403"}}); err == nil {
		t.Error("defaults.reject_with = http-403 accepted")
	}
	if _, err := Compile(Config{Defaults: Defaults{Policy: "allow"}, Inspect: InspectConfig{OnIncomplete: "maybe"}}); err == nil {
		t.Error("on_incomplete = maybe accepted")
	}
}

func TestDecidePendingAllocs(t *testing.T) {
	p := l7Policy(t, InspectConfig{},
		RuleConfig{Name: "block-sni", Proto: List{"tcp"}, DstPort: List{443}, TLS: &TLSMatch{SNI: sm("suffix", "@bad")}, Action: "reject"},
		RuleConfig{Name: "h", Proto: List{"tcp"}, HTTP: &HTTPMatch{Host: sm("suffix", "@bad")}, Action: "reject"},
	)
	v := p.Decide(tlsFlow)
	if !v.Pending || v.Need != NeedSNI|NeedHTTPHost {
		t.Fatalf("Decide = %v need %b", v, v.Need)
	}
	if n := testing.AllocsPerRun(100, func() { p.Decide(tlsFlow) }); n != 0 {
		t.Errorf("pending Decide allocates %v", n)
	}
	fields := &L7Fields{Proto: L7TLS, SNI: []byte("good.example")}
	if n := testing.AllocsPerRun(100, func() { p.Resume(tlsFlow, v, fields) }); n != 0 {
		t.Errorf("Resume to an L3/L4 verdict allocates %v", n)
	}
	f := flow("tcp", "198.18.1.5:40000", "198.18.2.1:80")
	got := p.Resume(f, p.Decide(f), &L7Fields{Proto: L7HTTP, Host: []byte("ok.example"), Method: []byte("GET"), Path: []byte("/")})
	in := p.NewInspector(f, got)
	req := []byte("GET /x HTTP/1.1\r\nHost: fine.example\r\n\r\n")
	if n := testing.AllocsPerRun(100, func() {
		if _, ok := in.Feed(ToServer, req); ok {
			t.Fatal("hit")
		}
	}); n != 0 {
		t.Errorf("per-request HTTP check allocates %v", n)
	}
}

func TestVerdictStringL7(t *testing.T) {
	v := Verdict{Action: ActionReject, Reject: RejectHTTP403, Rule: 2, LogRule: -1, Field: FieldHTTPHost, Value: "x.example"}
	if s := v.String(); s != `reject/http-403 rule=2 http.host="x.example"` {
		t.Errorf("String = %s", s)
	}
	if FieldDNSQName.LogKey() != "dns_qname" || FieldSNI.LogKey() != "sni" || RejectDNSNXDomain.String() != "dns-nxdomain" {
		t.Error("names")
	}
}
