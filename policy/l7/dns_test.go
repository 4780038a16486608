package l7

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

type qopts struct {
	name       string
	id         uint16
	rd, cd     bool
	typ        dnsmessage.Type
	edns       bool
	questions  int
	response   bool
	opcode     dnsmessage.OpCode
	compressed bool
}

func buildQuery(t testing.TB, o qopts) []byte {
	t.Helper()
	if o.typ == 0 {
		o.typ = dnsmessage.TypeA
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: o.id, RecursionDesired: o.rd, CheckingDisabled: o.cd, Response: o.response, OpCode: o.opcode})
	if o.compressed {
		b.EnableCompression()
	}
	if err := b.StartQuestions(); err != nil {
		t.Fatal(err)
	}
	for range o.questions {
		if err := b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(o.name), Type: o.typ, Class: dnsmessage.ClassINET}); err != nil {
			t.Fatal(err)
		}
	}
	if o.edns {
		if err := b.StartAdditionals(); err != nil {
			t.Fatal(err)
		}
		var rh dnsmessage.ResourceHeader
		if err := rh.SetEDNS0(1232, dnsmessage.RCodeSuccess, true); err != nil {
			t.Fatal(err)
		}
		if err := b.OPTResource(rh, dnsmessage.OPTResource{}); err != nil {
			t.Fatal(err)
		}
	}
	msg, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func TestParseQuery(t *testing.T) {
	cases := []struct {
		o    qopts
		name string
	}{
		{qopts{name: "WWW.Example.COM.", id: 0x1234, rd: true, cd: true, questions: 1}, "www.example.com"},
		{qopts{name: "mail.example.org.", id: 7, typ: dnsmessage.TypeAAAA, edns: true, questions: 1}, "mail.example.org"},
		{qopts{name: ".", id: 9, typ: dnsmessage.TypeNS, questions: 1}, ""},
		{qopts{name: "a.example.", questions: 1, opcode: 2}, "a.example"},
	}
	for _, c := range cases {
		msg := buildQuery(t, c.o)
		q, err := ParseQuery(msg)
		if err != nil {
			t.Fatalf("%s: %v", c.o.name, err)
		}
		if string(q.Name()) != c.name || q.ID != c.o.id || q.Type != c.o.typ && c.o.typ != 0 || q.Class != dnsmessage.ClassINET ||
			q.RecursionDesired() != c.o.rd || q.CheckingDisabled() != c.o.cd || q.OpCode != c.o.opcode {
			t.Fatalf("%s: got %+v name %q", c.o.name, q, q.Name())
		}
	}
}

func TestParseQueryReject(t *testing.T) {
	good := buildQuery(t, qopts{name: "a.example.", questions: 1})
	dotted := slices.Clone(good)
	dotted[12+1] = '.' // "a" becomes "." inside the first label
	pointer := append(slices.Clone(good[:12]), 0xc0, 0x0c, 0, 1, 0, 1)
	cases := map[string][]byte{
		"response":         buildQuery(t, qopts{name: "a.example.", questions: 1, response: true}),
		"no question":      buildQuery(t, qopts{name: "a.example.", questions: 0}),
		"two questions":    buildQuery(t, qopts{name: "a.example.", questions: 2}),
		"truncated":        good[:len(good)-3],
		"short header":     good[:5],
		"dot in label":     dotted,
		"compressed qname": pointer,
	}
	for name, msg := range cases {
		if _, err := ParseQuery(msg); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if _, err := NXDomain(msg, nil); err == nil {
			t.Errorf("%s: NXDomain accepted", name)
		}
	}
	if _, err := NXDomain(buildQuery(t, qopts{name: "a.example.", questions: 1, opcode: 2}), nil); err == nil {
		t.Error("NXDomain for a STATUS opcode")
	}
}

func TestNXDomain(t *testing.T) {
	for _, o := range []qopts{
		{name: "MiXeD.Example.", id: 0xbeef, rd: true, cd: true, questions: 1, edns: true},
		{name: "norecurse.example.", id: 1, typ: dnsmessage.TypeTXT, questions: 1},
	} {
		query := buildQuery(t, o)
		resp, err := NXDomain(query, make([]byte, 0, 512))
		if err != nil {
			t.Fatal(err)
		}
		var p dnsmessage.Parser
		h, err := p.Start(resp)
		if err != nil {
			t.Fatal(err)
		}
		want := dnsmessage.Header{ID: o.id, Response: true, RecursionDesired: o.rd, RecursionAvailable: true, CheckingDisabled: o.cd, RCode: dnsmessage.RCodeNameError}
		if h != want {
			t.Fatalf("header %+v want %+v", h, want)
		}
		qs, err := p.AllQuestions()
		if err != nil || len(qs) != 1 {
			t.Fatalf("questions %v %v", qs, err)
		}
		if qs[0].Name.String() != o.name || qs[0].Type != max(o.typ, dnsmessage.TypeA) || qs[0].Class != dnsmessage.ClassINET {
			t.Fatalf("question %v", qs[0])
		}
		if n, err := p.AllAnswers(); err != nil || len(n) != 0 {
			t.Fatalf("answers %v %v", n, err)
		}
		if _, err := ParseQuery(resp); err == nil {
			t.Fatal("ParseQuery accepted the response")
		}
	}
}

func TestDNSAllocs(t *testing.T) {
	query := buildQuery(t, qopts{name: "www.example.com.", id: 3, rd: true, questions: 1, edns: true})
	dst := make([]byte, 0, 512)
	var out []byte
	allocs := testing.AllocsPerRun(200, func() {
		q, err := ParseQuery(query)
		if err != nil || len(q.Name()) == 0 {
			t.Fatal(err)
		}
		if out, err = NXDomain(query, dst); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("allocs/run = %v", allocs)
	}
	if len(out) == 0 {
		t.Fatal("no response")
	}
}

// frames renders a DNS-over-TCP stream's messages fed in random pieces.
func frames(f *TCPFramer, stream []byte, r *rand.Rand, maxSeg int) [][]byte {
	var out [][]byte
	for len(stream) > 0 {
		piece := stream[:min(len(stream), 1+r.IntN(maxSeg))]
		stream = stream[len(piece):]
		for len(piece) > 0 {
			n, msg, ok := f.Feed(piece)
			piece = piece[n:]
			if ok {
				out = append(out, slices.Clone(msg))
			} else if len(piece) != 0 {
				panic("framer left bytes without a message")
			}
		}
	}
	return out
}

func TestTCPFramer(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	var msgs [][]byte
	var stream []byte
	for i, n := range []int{40, 0, 1, 3000, 65535, 300, 2} {
		m := bytes.Repeat([]byte{byte(i + 1)}, n)
		msgs = append(msgs, m)
		var err error
		if stream, err = AppendTCPFrame(stream, m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := AppendTCPFrame(nil, make([]byte, 1<<16)); err == nil {
		t.Fatal("framed a 64 KiB message")
	}
	var f TCPFramer
	for _, seg := range []int{len(stream), 1, 2, 3, 1460, 70000} {
		f.Reset()
		got := frames(&f, stream, r, seg)
		if !slices.EqualFunc(got, msgs, bytes.Equal) {
			t.Fatalf("segments <=%d: got %d messages", seg, len(got))
		}
	}
	// Warm, split framing allocates nothing.
	f.Reset()
	frames(&f, stream, r, 100)
	small := stream[:2+40+2+0+2+1]
	if a := testing.AllocsPerRun(100, func() {
		for i := range small {
			f.Feed(small[i : i+1])
		}
	}); a != 0 {
		t.Fatalf("allocs/run = %v", a)
	}
}

func TestNames(t *testing.T) {
	for in, want := range map[string]string{"WWW.Example.COM.": "www.example.com", "a..": "a.", ".": "", "": "", "é.X": "é.x"} {
		if got := string(NormalizeName([]byte(in))); got != want {
			t.Errorf("NormalizeName(%q) = %q want %q", in, got, want)
		}
	}
	cases := []struct {
		name, suffix string
		want         bool
	}{
		{"a.b.example", "example", true},
		{"a.b.example", "b.example", true},
		{"a.b.example", ".b.example", true},
		{"a.b.example", "a.b.example", true},
		{"a.b.example", "ample", false},
		{"a.b.example", "b.exampl", false},
		{"example", "example", true},
		{"xexample", "example", false},
		{"example", "a.example", false},
		{"a.example", "", false},
		{"a.example", ".", false},
	}
	for _, c := range cases {
		if got := MatchSuffix(c.name, c.suffix); got != c.want {
			t.Errorf("MatchSuffix(%q, %q) = %v", c.name, c.suffix, got)
		}
		if got := MatchSuffixBytes([]byte(c.name), c.suffix); got != c.want {
			t.Errorf("MatchSuffixBytes(%q, %q) = %v", c.name, c.suffix, got)
		}
	}
	sni := []byte("www.example.com")
	if a := testing.AllocsPerRun(100, func() { MatchSuffixBytes(sni, "example.com") }); a != 0 {
		t.Fatalf("MatchSuffixBytes allocs %v", a)
	}
}

func BenchmarkParseQuery(b *testing.B) {
	query := buildQuery(b, qopts{name: "www.example.com.", id: 3, rd: true, questions: 1, edns: true})
	dst := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseQuery(query); err != nil {
			b.Fatal(err)
		}
		if _, err := NXDomain(query, dst); err != nil {
			b.Fatal(err)
		}
	}
}
