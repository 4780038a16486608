package l7

import (
	"bytes"
	"crypto/tls"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

type golden struct {
	file string
	cfg  *tls.Config
	sni  string // as TLSState must report it
}

// goldens are ClientHellos from crypto/tls: Go's default key shares
// include X25519MLKEM768, which makes the ~1.7 KB post-quantum hello.
var goldens = []golden{
	{"pq.bin", &tls.Config{ServerName: "www.example.com"}, "www.example.com"},
	{"x25519.bin", &tls.Config{ServerName: "Mixed.Example.ORG", CurvePreferences: []tls.CurveID{tls.X25519}}, "mixed.example.org"},
	{"tls12.bin", &tls.Config{ServerName: "tls12.example.net", MaxVersion: tls.VersionTLS12}, "tls12.example.net"},
	{"nosni.bin", &tls.Config{InsecureSkipVerify: true}, ""},
}

func goldenPath(name string) string { return filepath.Join("testdata", "clienthello", name) }

func readGolden(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(goldenPath(name))
	if err != nil {
		t.Fatalf("%v (regenerate with go test -run TestTLSGolden -update)", err)
	}
	return b
}

func feedSplit(t *TLSState, data []byte, r *rand.Rand, maxSeg int) Status {
	st := NeedMore
	for len(data) > 0 {
		n := min(len(data), 1+r.IntN(maxSeg))
		st = t.Feed(data[:n])
		data = data[n:]
	}
	return st
}

func checkSNI(t *testing.T, what string, data []byte, want string) {
	t.Helper()
	r := rand.New(rand.NewPCG(uint64(len(data)), 7))
	var st TLSState
	for _, seg := range []int{len(data), 1, 3, 64, 700} {
		st.Reset()
		if got := feedSplit(&st, data, r, seg); got != Done {
			t.Fatalf("%s: segments of <=%d: status %v err %v", what, seg, got, st.Err())
		}
		if string(st.SNI()) != want {
			t.Fatalf("%s: segments of <=%d: SNI %q want %q", what, seg, st.SNI(), want)
		}
	}
	// The same handshake re-fragmented into small records.
	for _, rec := range []int{1, 100, 1000} {
		st.Reset()
		if got := feedSplit(&st, records(handshakeBytes(data), rec), r, 50); got != Done || string(st.SNI()) != want {
			t.Fatalf("%s: records of %d: status %v SNI %q err %v", what, rec, got, st.SNI(), st.Err())
		}
	}
}

func TestTLSGolden(t *testing.T) {
	if *update {
		for _, g := range goldens {
			if err := os.MkdirAll(filepath.Dir(goldenPath(g.file)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(goldenPath(g.file), captureHello(t, g.cfg), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		writeTLSSeeds(t)
		writeHTTPSeeds(t)
		writeDNSSeeds(t)
	}
	for _, g := range goldens {
		checkSNI(t, g.file, readGolden(t, g.file), g.sni)
	}
	if n := len(readGolden(t, "pq.bin")); n < 1500 {
		t.Errorf("pq.bin is %d bytes; expected a post-quantum sized hello", n)
	}
}

// TestTLSLive checks hellos from the crypto/tls in use today, in case its
// shape drifts from the golden files.
func TestTLSLive(t *testing.T) {
	for _, g := range goldens {
		checkSNI(t, "live "+g.file, captureHello(t, g.cfg), g.sni)
	}
}

func TestTLSSynthetic(t *testing.T) {
	grease := ext(0x3a3a, nil)
	ech := ext(0xfe0d, bytes.Repeat([]byte{0xab}, 200)) // encrypted inner hello
	keyShare := ext(51, bytes.Repeat([]byte{1}, 1700))  // makes a ~1.8 KB hello
	cases := []struct {
		name string
		msg  []byte
		sni  string
	}{
		{"grease and ech", helloMsg(grease, sniExt("public.example.com"), ech, ext(0x1a1a, []byte{0})), "public.example.com"},
		{"large key share", helloMsg(keyShare, sniExt("pq.example")), "pq.example"},
		{"no extensions", helloMsg(), ""},
		{"extensions without sni", helloMsg(grease, keyShare), ""},
		{"trailing dot and case", helloMsg(sniExt("WWW.Example.COM.")), "www.example.com"},
		{"first host_name wins", helloMsg(sniExt("a.example", "b.example")), "a.example"},
	}
	for _, c := range cases {
		checkSNI(t, c.name, records(c.msg, 16384), c.sni)
	}
}

func TestTLSReject(t *testing.T) {
	big := helloMsg(ext(21, make([]byte, MaxClientHello)), sniExt("x.example"))
	badSNI := helloMsg(ext(extServerName, []byte{0, 5, 0, 0, 9, 'a', 'b'}))
	cases := []struct {
		name string
		data []byte
	}{
		{"sslv2 compatible hello", []byte{0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15}},
		{"http", []byte("GET / HTTP/1.1\r\n")},
		{"application data", []byte{0x17, 3, 3, 0, 5, 1, 2, 3, 4, 5}},
		{"record version", []byte{0x16, 2, 0, 0, 5}},
		{"zero length record", []byte{0x16, 3, 1, 0, 0}},
		{"oversized record", []byte{0x16, 3, 1, 0x40, 1}},
		{"server hello", records([]byte{2, 0, 0, 1, 0}, 100)},
		{"too large", records(big, 16000)},
		{"duplicate sni", records(helloMsg(sniExt("a.example"), sniExt("b.example")), 16384)},
		{"bad sni", records(badSNI, 16384)},
		{"empty sni list", records(helloMsg(ext(extServerName, []byte{0, 0})), 16384)},
		{"truncated extensions", records(chop(helloMsg(sniExt("a.example")), 3), 16384)},
		{"no cipher suites", records(chop(helloMsg(), 40), 16384)},
	}
	r := rand.New(rand.NewPCG(1, 1))
	for _, c := range cases {
		for _, seg := range []int{len(c.data), 1} {
			var st TLSState
			if got := feedSplit(&st, c.data, r, seg); got != NotTLS || st.Err() == nil {
				t.Errorf("%s (segments <=%d): status %v err %v", c.name, seg, got, st.Err())
			}
		}
	}
	// Early decision: one byte is enough to tell another protocol apart.
	var st TLSState
	if st.Feed([]byte("G")) != NotTLS {
		t.Error("one byte of HTTP not NotTLS")
	}
	// An incomplete hello asks for more and stays sticky afterwards.
	st.Reset()
	pq := readGolden(t, "pq.bin")
	if st.Feed(pq[:len(pq)-1]) != NeedMore || st.Feed(pq[len(pq)-1:]) != Done || st.Feed([]byte("junk")) != Done {
		t.Error("incomplete / sticky sequence")
	}
}

func TestTLSAllocs(t *testing.T) {
	pq := readGolden(t, "pq.bin")
	frag := records(handshakeBytes(pq), 300)
	var st TLSState
	allocs := testing.AllocsPerRun(200, func() {
		st.Reset()
		st.Feed(pq)
		st.Reset()
		for i := 0; i < len(frag); i += 7 {
			st.Feed(frag[i:min(i+7, len(frag))])
		}
	})
	if allocs != 0 {
		t.Fatalf("allocs/run = %v", allocs)
	}
	if string(st.SNI()) != "www.example.com" {
		t.Fatalf("SNI %q", st.SNI())
	}
}

func BenchmarkSNIExtract(b *testing.B) {
	pq := readGolden(b, "pq.bin")
	frag := records(handshakeBytes(pq), 512)
	for _, c := range []struct {
		name string
		data []byte
		seg  int
	}{
		{"pq-one-segment", pq, len(pq)},
		{"pq-records512-segments1460", frag, 1460},
		{"x25519-one-segment", readGolden(b, "x25519.bin"), 1 << 16},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.data)))
			var st TLSState
			for b.Loop() {
				st.Reset()
				for i := 0; i < len(c.data); i += c.seg {
					st.Feed(c.data[i:min(i+c.seg, len(c.data))])
				}
				if st.Status() != Done {
					b.Fatal(st.Err())
				}
			}
		})
	}
}

// chop drops n bytes off a handshake message's end and fixes its length,
// so the message is complete but its contents are cut short.
func chop(msg []byte, n int) []byte {
	msg = msg[:len(msg)-n]
	l := len(msg) - 4
	msg[1], msg[2], msg[3] = byte(l>>16), byte(l>>8), byte(l)
	return msg
}
