package l7

import (
	"crypto/tls"
	"encoding/binary"
	"flag"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden ClientHellos and fuzz seed corpora under testdata/")

// captureHello runs a crypto/tls client against a pipe and returns the
// records of its first flight (the ClientHello).
func captureHello(t testing.TB, cfg *tls.Config) []byte {
	t.Helper()
	c, s := net.Pipe()
	done := make(chan struct{})
	go func() { // owned by this call; ends when s closes and the handshake fails
		defer close(done)
		_ = tls.Client(c, cfg).Handshake()
		c.Close()
	}()
	defer func() { s.Close(); <-done }()
	var out []byte
	for {
		var hdr [5]byte
		if _, err := io.ReadFull(s, hdr[:]); err != nil {
			t.Fatal(err)
		}
		body := make([]byte, binary.BigEndian.Uint16(hdr[3:]))
		if _, err := io.ReadFull(s, body); err != nil {
			t.Fatal(err)
		}
		out = append(append(out, hdr[:]...), body...)
		// The hello is complete once the handshake bytes cover its length.
		hs := handshakeBytes(out)
		if len(hs) >= 4 && len(hs) >= 4+(int(hs[1])<<16|int(hs[2])<<8|int(hs[3])) {
			return out
		}
	}
}

func handshakeBytes(recs []byte) []byte {
	var hs []byte
	for len(recs) >= 5 {
		n := int(binary.BigEndian.Uint16(recs[3:]))
		hs = append(hs, recs[5:5+n]...)
		recs = recs[5+n:]
	}
	return hs
}

// Builders for synthetic ClientHellos.

func u16(n int) []byte { return []byte{byte(n >> 8), byte(n)} }

func ext(typ int, body []byte) []byte {
	return append(append(u16(typ), u16(len(body))...), body...)
}

func sniExt(names ...string) []byte {
	var list []byte
	for _, n := range names {
		list = append(list, serverNameHost)
		list = append(append(list, u16(len(n))...), n...)
	}
	return ext(extServerName, append(u16(len(list)), list...))
}

// helloMsg builds a ClientHello handshake message with GREASE cipher
// suites and the given extensions (none at all when exts is nil).
func helloMsg(exts ...[]byte) []byte {
	body := []byte{3, 3}
	body = append(body, make([]byte, 32)...)                      // random
	body = append(body, 32)                                       // session id
	body = append(body, make([]byte, 32)...)                      //
	body = append(body, 0, 6, 0x1a, 0x1a, 0x13, 0x01, 0x13, 0x02) // GREASE + suites
	body = append(body, 1, 0)                                     // null compression
	if exts != nil {
		var e []byte
		for _, x := range exts {
			e = append(e, x...)
		}
		body = append(append(body, u16(len(e))...), e...)
	}
	n := len(body)
	return append([]byte{typeClientHello, byte(n >> 16), byte(n >> 8), byte(n)}, body...)
}

// records splits a handshake message into records of at most size bytes.
func records(hs []byte, size int) []byte {
	var out []byte
	for len(hs) > 0 {
		n := min(size, len(hs))
		out = append(append(out, recordHandshake, 3, 1), u16(n)...)
		out = append(out, hs[:n]...)
		hs = hs[n:]
	}
	return out
}

// writeSeeds writes one fuzz corpus file per seed, each a list of []byte
// arguments.
func writeSeeds(t *testing.T, target string, seeds map[string][][]byte) {
	t.Helper()
	dir := filepath.Join("testdata", "fuzz", target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, args := range seeds {
		var b strings.Builder
		b.WriteString("go test fuzz v1\n")
		for _, a := range args {
			b.WriteString("[]byte(" + strconv.Quote(string(a)) + ")\n")
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
