package l7

import (
	"bytes"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// FuzzDNS checks that no message panics ParseQuery or NXDomain, that an
// accepted QUERY gets a well-formed NXDOMAIN echoing its ID and question,
// and that TCP framing of data as a stream does not depend on splits.
func FuzzDNS(f *testing.F) {
	for _, s := range dnsSeeds(f) {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		q, err := ParseQuery(data)
		resp, nerr := NXDomain(data, nil)
		if err != nil && nerr == nil {
			t.Fatal("NXDomain accepted what ParseQuery refused")
		}
		if err == nil && q.OpCode == 0 {
			if nerr != nil {
				t.Fatalf("NXDomain: %v", nerr)
			}
			var p dnsmessage.Parser
			h, err := p.Start(resp)
			if err != nil {
				t.Fatal(err)
			}
			qs, err := p.AllQuestions()
			if err != nil || len(qs) != 1 || h.ID != q.ID || !h.Response || h.RCode != dnsmessage.RCodeNameError || qs[0].Type != q.Type {
				t.Fatalf("response %+v %v %v", h, qs, err)
			}
			if got := NormalizeName(qs[0].Name.Data[:qs[0].Name.Length]); !bytes.Equal(got, q.Name()) {
				t.Fatalf("question %q vs %q", got, q.Name())
			}
		}
		var whole, split TCPFramer
		var a, b [][]byte
		collectFrames(&whole, data, nil, &a)
		collectFrames(&split, data, cuts, &b)
		if len(a) != len(b) {
			t.Fatalf("%d vs %d messages", len(a), len(b))
		}
		for i := range a {
			if !bytes.Equal(a[i], b[i]) {
				t.Fatalf("message %d differs", i)
			}
		}
	})
}

func collectFrames(f *TCPFramer, data, cuts []byte, out *[][]byte) {
	segments(data, cuts, func(seg []byte) {
		for len(seg) > 0 {
			n, msg, ok := f.Feed(seg)
			seg = seg[n:]
			if ok {
				*out = append(*out, bytes.Clone(msg))
			}
		}
	})
}

func dnsSeeds(t testing.TB) map[string][][]byte {
	q := buildQuery(t, qopts{name: "WWW.Example.COM.", id: 0x1234, rd: true, questions: 1, edns: true})
	aaaa := buildQuery(t, qopts{name: "ipv6.example.", id: 2, typ: dnsmessage.TypeAAAA, questions: 1})
	stream, _ := AppendTCPFrame(nil, q)
	stream, _ = AppendTCPFrame(stream, aaaa)
	resp, _ := NXDomain(q, nil)
	return map[string][][]byte{
		"query-a":    {q, {1, 20}},
		"query-aaaa": {aaaa, nil},
		"tcp-stream": {stream, {0, 3, 40}},
		"response":   {resp, {5}},
		"two-q":      {buildQuery(t, qopts{name: "a.example.", questions: 2}), nil},
		"root":       {buildQuery(t, qopts{name: ".", questions: 1, typ: dnsmessage.TypeNS}), nil},
	}
}

func writeDNSSeeds(t *testing.T) { writeSeeds(t, "FuzzDNS", dnsSeeds(t)) }
