package l7

import (
	"bytes"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
)

// splitByCuts feeds data in segments whose sizes come from cuts (cycled;
// 0 bytes mean 1).
func segments(data, cuts []byte, fn func([]byte)) {
	for i := 0; len(data) > 0; i++ {
		n := len(data)
		if len(cuts) > 0 {
			n = min(len(data), 1+int(cuts[i%len(cuts)]))
		}
		fn(data[:n])
		data = data[n:]
	}
}

// FuzzTLS checks that no input panics and that the outcome does not depend
// on how the stream is split: the status, SNI and error of a split feed
// equal those of feeding everything at once.
func FuzzTLS(f *testing.F) {
	for _, g := range goldens {
		b, err := readGoldenFile(g.file)
		if err == nil {
			f.Add(b, []byte{0, 1, 200, 7})
		}
	}
	f.Add(records(helloMsg(sniExt("a.example")), 10), []byte{3})
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		var whole, split TLSState
		ws := whole.Feed(data)
		ss := NeedMore
		segments(data, cuts, func(seg []byte) { ss = split.Feed(seg) })
		if len(data) == 0 {
			ss = split.Status()
		}
		if ws != ss || !bytes.Equal(whole.SNI(), split.SNI()) || whole.Err() != split.Err() {
			t.Fatalf("whole %v %q %v, split %v %q %v", ws, whole.SNI(), whole.Err(), ss, split.SNI(), split.Err())
		}
		if ws == Done && len(whole.SNI()) > maxSNI {
			t.Fatal("SNI too long")
		}
		if ws != NeedMore && whole.Feed([]byte{0}) != ws {
			t.Fatal("status not sticky")
		}
	})
}

func readGoldenFile(name string) ([]byte, error) { return os.ReadFile(goldenPath(name)) }

// writeTLSSeeds commits realistic seeds: the golden hellos whole, in
// small segments and re-fragmented into records, synthetic GREASE/ECH
// hellos, and a few other protocols' first bytes.
func writeTLSSeeds(t *testing.T) {
	seeds := map[string][][]byte{}
	for _, g := range goldens {
		b, err := readGoldenFile(g.file)
		if err != nil {
			t.Fatal(err)
		}
		base := strings.TrimSuffix(g.file, ".bin")
		seeds[base+"-whole"] = [][]byte{b, nil}
		seeds[base+"-segments"] = [][]byte{b, {0, 4, 17, 255, 1}}
		seeds[base+"-records"] = [][]byte{records(handshakeBytes(b), 333), {99, 0}}
	}
	seeds["grease-ech"] = [][]byte{records(helloMsg(ext(0x0a0a, nil), sniExt("public.example"), ext(0xfe0d, make([]byte, 90))), 64), {5}}
	seeds["no-extensions"] = [][]byte{records(helloMsg(), 100), nil}
	seeds["sslv2"] = [][]byte{{0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15, 0, 0, 0, 0x10}, nil}
	seeds["http"] = [][]byte{[]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), {2}}
	r := rand.New(rand.NewPCG(4, 2))
	junk := make([]byte, 300)
	for i := range junk {
		junk[i] = byte(r.Uint32())
	}
	seeds["random"] = [][]byte{junk, junk[:5]}
	writeSeeds(t, "FuzzTLS", seeds)
}
