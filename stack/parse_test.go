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
		"syn4-opts": ipPkt(cli4, srv4, protoTCP, tcpHdrOpts(40000, 80, 1, 0, 0x02, synOpts, nil)),
		"ack6-sack": ipPkt(cli6, srv6, protoTCP, tcpHdrOpts(40000, 80, 1, 2, 0x10, sackOpts, []byte("x"))),
		"xmas4":     ipPkt(cli4, srv4, protoTCP, tcpHdr(40000, 80, 1, 0, 0x29, nil)),
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
		if p.ct.Key.Proto == protoTCP && (!p.ct.TCPOpts || p.ct.WScale < -1 || p.ct.WScale > 14) {
			t.Fatalf("TCP options: walked %v, window scale %d", p.ct.TCPOpts, p.ct.WScale)
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

// synOpts is a typical Linux SYN's option list: MSS, SACK permitted,
// timestamps, NOP, window scale 7.
var synOpts = []byte{2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7}

// sackOpts carries two SACK blocks, the second with the higher right edge
// across the sequence wrap.
var sackOpts = []byte{1, 1, 5, 18, 0xff, 0xff, 0xff, 0x00, 0xff, 0xff, 0xff, 0xf0, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x20}

func TestParseTCPOptions(t *testing.T) {
	tests := []struct {
		name     string
		flags    uint8
		opts     []byte
		wscale   int8
		sackPerm bool
		edge     uint32
	}{
		{"syn options", 0x02, synOpts, 7, true, 0},
		{"syn without options", 0x02, nil, -1, false, 0},
		{"window scale clamped", 0x02, []byte{3, 3, 20, 0}, 14, false, 0},
		{"window scale ignored without SYN", 0x10, []byte{3, 3, 7, 0}, -1, false, 0},
		{"sack permitted ignored without SYN", 0x10, []byte{4, 2, 0, 0}, -1, false, 0},
		{"sack edge across wrap", 0x10, sackOpts, -1, false, 0x20},
		{"bad length stops the walk", 0x02, []byte{3, 3, 5, 8, 1, 4, 2, 0}, 5, false, 0},
		{"zero length stops the walk", 0x02, []byte{8, 0, 3, 3, 5, 0, 0, 0}, -1, false, 0},
		{"end of list", 0x02, []byte{0, 3, 3, 5}, -1, false, 0},
		{"truncated kind", 0x02, []byte{1, 1, 1, 3}, -1, false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := ipPkt(cli4, srv4, protoTCP, tcpHdrOpts(1, 80, 1, 0, tc.flags, tc.opts, nil))
			var p parsed
			if r := parsePacket(b, &p); r != reasonNone {
				t.Fatalf("parse: %v", r)
			}
			if !p.ct.TCPOpts || p.ct.WScale != tc.wscale || p.ct.SACKPerm != tc.sackPerm || p.ct.SACKEdge != tc.edge {
				t.Errorf("opts %v wscale %d sackperm %v edge %#x; want true %d %v %#x",
					p.ct.TCPOpts, p.ct.WScale, p.ct.SACKPerm, p.ct.SACKEdge, tc.wscale, tc.sackPerm, tc.edge)
			}
			if p.payload != 40+len(tc.opts) {
				t.Errorf("payload offset %d, want %d", p.payload, 40+len(tc.opts))
			}
		})
	}
}

func TestParseQuote(t *testing.T) {
	orig := ipPkt(cli4, srv4, protoTCP, tcpHdr(40000, 80, 0xdeadbeef, 0, 0x10, []byte("data")))
	var op parsed
	parsePacket(orig, &op)
	out := make([]byte, ipv6MinMTU)
	n := buildPortUnreachable(out, orig, &op)
	var p parsed
	if r := parsePacket(out[:n], &p); r != reasonNone || !p.icmpErr {
		t.Fatalf("parse: %v, icmpErr %v", r, p.icmpErr)
	}
	if p.quote.Key != op.ct.Key || p.quote.Seq != 0xdeadbeef || p.quote.L4Len != 8 {
		t.Errorf("quote %+v, want key %+v seq 0xdeadbeef and 8 transport bytes", p.quote, op.ct.Key)
	}
	echo := ipPkt(cli6, srv6, protoICMP, echoHdr(true, 7, 1, []byte("ping")))
	parsePacket(echo, &op)
	n = buildPortUnreachable(out, echo, &op)
	if r := parsePacket(out[:n], &p); r != reasonNone || p.quote.ICMPType != 128 || p.quote.Key.SrcPort != 7 || p.quote.L4Len != 12 {
		t.Errorf("v6 echo quote: %v %+v", r, p.quote)
	}
}
