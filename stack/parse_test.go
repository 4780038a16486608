package stack

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// seedPackets are well-formed packets of every kind the parser accepts,
// plus an ICMP error of each family; FuzzParse mutates them.
func seedPackets() map[string][]byte {
	udp4 := ipPkt(cli4, srv4, protoUDP, udpHdr(40000, 53, []byte("query")))
	tcp6 := ipPkt(cli6, srv6, protoTCP, tcpHdr(40000, 443, 7, 9, 0x18, []byte("GET / HTTP/1.1\r\n")))
	var p4, p6 parsed
	parsePacket(udp4, &p4)
	parsePacket(tcp6, &p6)
	unreach4 := make([]byte, ipv6MinMTU)
	unreach6 := make([]byte, ipv6MinMTU)
	return map[string][]byte{
		"syn4":      synPkt(cli4, srv4, 40000, 80),
		"syn6":      synPkt(cli6, srv6, 40000, 80),
		"tcp6-data": tcp6,
		"udp4":      udp4,
		"udp6":      ipPkt(cli6, srv6, protoUDP, udpHdr(40000, 53, []byte("query"))),
		"echo4":     ipPkt(cli4, srv4, protoICMP, echoHdr(false, 1, 2, []byte("ping"))),
		"echo6":     ipPkt(cli6, srv6, protoICMP, echoHdr(true, 1, 2, []byte("ping"))),
		"unreach4":  unreach4[:buildPortUnreachable(unreach4, udp4, &p4)],
		"unreach6":  unreach6[:buildPortUnreachable(unreach6, tcp6, &p6)],
		"ext6":      v6ExtChain(3),
	}
}

func FuzzParse(f *testing.F) {
	for _, b := range seedPackets() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var p parsed
		r := parsePacket(b, &p)
		if r >= numReasons {
			t.Fatalf("reason %d out of range", r)
		}
		if r != reasonNone {
			return
		}
		if p.end > len(b) || p.l4 > p.end || p.payload > p.end || p.payload < p.l4 {
			t.Fatalf("offsets out of bounds: l4 %d payload %d end %d len %d", p.l4, p.payload, p.end, len(b))
		}
		if p.ct.PayloadLen < 0 || p.ct.Len != p.end {
			t.Fatalf("lengths: payload %d len %d end %d", p.ct.PayloadLen, p.ct.Len, p.end)
		}
		// Whatever parses and may be answered can be answered without
		// panicking, and the answer is well formed.
		if !canReplyTo(&p) {
			return
		}
		out := make([]byte, ipv6MinMTU)
		if p.ct.Key.Proto == protoTCP {
			buildTCPReset(out, b, &p)
		}
		n := buildPortUnreachable(out, b, &p)
		var q parsed
		// icmp_quote: well formed, but quoting a packet no flow can own
		// (an echo reply, say), which the parser refuses on purpose.
		if r := parsePacket(out[:n], &q); (r != reasonNone || !q.icmpErr) && r != reasonICMPQuote {
			t.Fatalf("our own port unreachable does not parse as an ICMP error: %v", r)
		}
	})
}

func TestParseSeeds(t *testing.T) {
	for name, b := range seedPackets() {
		var p parsed
		if r := parsePacket(b, &p); r != reasonNone {
			t.Errorf("%s: %v, want a valid packet", name, r)
		}
	}
}

// TestWriteFuzzCorpus regenerates testdata/fuzz/FuzzParse from the seeds
// when TUNGATE_WRITE_CORPUS=1; otherwise it checks the corpus is there.
func TestWriteFuzzCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzParse")
	if os.Getenv("TUNGATE_WRITE_CORPUS") != "1" {
		ents, err := os.ReadDir(dir)
		if err != nil || len(ents) < len(seedPackets()) {
			t.Fatalf("fuzz corpus %s missing or short (%v); regenerate with TUNGATE_WRITE_CORPUS=1", dir, err)
		}
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range seedPackets() {
		var buf bytes.Buffer
		fmt.Fprintf(&buf, "go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(b)))
		if err := os.WriteFile(filepath.Join(dir, name), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
