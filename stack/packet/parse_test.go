package packet

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/tungate/tungate/stack/packet/packettest"

	"github.com/tungate/tungate/conntrack"
)

// seedPackets are well-formed packets of every kind the parser accepts,
// plus an ICMP error of each family; FuzzParse mutates them.
func seedPackets() map[string][]byte {
	udp4 := ipPkt(cli4, srv4, ProtoUDP, udpHdr(40000, 53, []byte("query")))
	tcp6 := ipPkt(cli6, srv6, ProtoTCP, tcpHdr(40000, 443, 7, 9, TCPPsh|TCPAck, []byte("GET / HTTP/1.1\r\n")))
	var p4, p6 Parsed
	Parse(udp4, &p4)
	Parse(tcp6, &p6)
	unreach4 := make([]byte, IPv6MinMTU)
	unreach6 := make([]byte, IPv6MinMTU)
	return map[string][]byte{
		"syn4":      synPkt(cli4, srv4, 40000, 80),
		"syn6":      synPkt(cli6, srv6, 40000, 80),
		"tcp6-data": tcp6,
		"udp4":      udp4,
		"udp6":      ipPkt(cli6, srv6, ProtoUDP, udpHdr(40000, 53, []byte("query"))),
		"echo4":     ipPkt(cli4, srv4, ProtoICMP, echoHdr(false, 1, 2, []byte("ping"))),
		"echo6":     ipPkt(cli6, srv6, ProtoICMP, echoHdr(true, 1, 2, []byte("ping"))),
		"unreach4":  unreach4[:ICMPError(unreach4, udp4, &p4, PortUnreachable)],
		"unreach6":  unreach6[:ICMPError(unreach6, tcp6, &p6, PortUnreachable)],
		"ext6":      packettest.V6ExtChain(cli6, srv6, 3),
		"syn4-opts": ipPkt(cli4, srv4, ProtoTCP, tcpHdrOpts(40000, 80, 1, 0, TCPSyn, synOpts, nil)),
		"ack6-sack": ipPkt(cli6, srv6, ProtoTCP, tcpHdrOpts(40000, 80, 1, 2, TCPAck, sackOpts, []byte("x"))),
		"xmas4":     ipPkt(cli4, srv4, ProtoTCP, tcpHdr(40000, 80, 1, 0, TCPFin|TCPPsh|TCPUrg, nil)),
	}
}

// FuzzParse checks that the parser survives any input with consistent
// offsets, and that whatever it accepts and may be answered is answered
// with a well-formed packet identical to the old byte-offset builders'.
// The answers are built from ParseOutbound's view, which skips checksums,
// so mutations reach them that a checksum would stop.
func FuzzParse(f *testing.F) {
	for _, b := range seedPackets() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var p, trusted Parsed
		r := Parse(b, &p)
		checkParsed(t, b, r, &p)
		rt := ParseOutbound(b, &trusted)
		checkParsed(t, b, rt, &trusted)
		if r == ReasonNone && (rt != ReasonNone || trusted.CT != p.CT || trusted.Quote != p.Quote) {
			t.Fatalf("ParseOutbound disagrees on a packet Parse accepts: %v %+v", rt, trusted.CT)
		}
		if rt == ReasonNone && CanReplyTo(&trusted) {
			checkAnswers(t, b, &trusted)
		}
	})
}

// checkParsed checks what the parser said about b.
func checkParsed(t *testing.T, b []byte, r DropReason, p *Parsed) {
	t.Helper()
	if r >= NumReasons {
		t.Fatalf("reason %d out of range", r)
	}
	if r != ReasonNone {
		return
	}
	if p.End > len(b) || p.L4 > p.End || p.Payload > p.End || p.Payload < p.L4 {
		t.Fatalf("offsets out of bounds: l4 %d payload %d end %d len %d", p.L4, p.Payload, p.End, len(b))
	}
	if p.CT.PayloadLen < 0 || p.CT.Len != p.End {
		t.Fatalf("lengths: payload %d len %d end %d", p.CT.PayloadLen, p.CT.Len, p.End)
	}
	if p.CT.Key.Proto == ProtoTCP && (!p.CT.TCPOpts || p.CT.WScale < -1 || p.CT.WScale > maxWScale) {
		t.Fatalf("TCP options: walked %v, window scale %d", p.CT.TCPOpts, p.CT.WScale)
	}
}

// checkAnswers builds every answer to the packet b that p describes and
// compares each with the old builders' bytes.
func checkAnswers(t *testing.T, b []byte, p *Parsed) {
	t.Helper()
	out, old := make([]byte, IPv6MinMTU), make([]byte, IPv6MinMTU)
	if p.CT.Key.Proto == ProtoTCP {
		n := TCPReset(out, p)
		if m := oldBuildTCPReset(old, b, p); !bytes.Equal(out[:n], old[:m]) {
			t.Fatalf("reset differs from the old builder's:\n got % x\nwant % x", out[:n], old[:m])
		}
	}
	for _, kind := range []Unreachable{PortUnreachable, AdminProhibited} {
		n := ICMPError(out, b, p, kind)
		if m := oldBuildICMPError(old, b, p, kind); !bytes.Equal(out[:n], old[:m]) {
			t.Fatalf("ICMP error %d differs from the old builder's:\n got % x\nwant % x", kind, out[:n], old[:m])
		}
		var q Parsed
		// icmp_quote: well formed, but quoting a packet no flow can own
		// (an echo reply, say), which the parser refuses on purpose.
		if r := Parse(out[:n], &q); (r != ReasonNone || !q.ICMPErr) && r != ReasonICMPQuote {
			t.Fatalf("our own ICMP error does not parse as one: %v", r)
		}
	}
	if p.EchoReq {
		seq := p.EchoSeq(b)
		out, old = make([]byte, p.End+40), make([]byte, p.End+40)
		n := EchoReply(out, p.Family, &p.CT.Key, seq, b[p.Payload:p.End])
		if m := oldBuildEchoReply(old, p.Family, &p.CT.Key, seq, b[p.Payload:p.End]); !bytes.Equal(out[:n], old[:m]) {
			t.Fatalf("echo reply differs from the old builder's:\n got % x\nwant % x", out[:n], old[:m])
		}
	}
}

func TestParseSeeds(t *testing.T) {
	for name, b := range seedPackets() {
		var p Parsed
		if r := Parse(b, &p); r != ReasonNone {
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

func TestParseFields(t *testing.T) {
	key := func(proto uint8, src, dst netip.Addr, sport, dport uint16) conntrack.Key {
		return conntrack.KeyFrom(proto, netip.AddrPortFrom(src, sport), netip.AddrPortFrom(dst, dport))
	}
	tests := []struct {
		name    string
		pkt     []byte
		key     conntrack.Key
		flags   uint8
		seq     uint32
		ack     uint32
		l4      int
		payload int
		echoReq bool
	}{
		{"tcp4 syn", synPkt(cli4, srv4, 40000, 80), key(ProtoTCP, cli4, srv4, 40000, 80), TCPSyn, 1000, 0, 20, 40, false},
		{"tcp6 data", ipPkt(cli6, srv6, ProtoTCP, tcpHdr(1, 443, 7, 9, TCPAck, []byte("hi"))), key(ProtoTCP, cli6, srv6, 1, 443), TCPAck, 7, 9, 40, 60, false},
		{"tcp4 ip options", v4Options(synPkt(cli4, srv4, 2, 80)), key(ProtoTCP, cli4, srv4, 2, 80), TCPSyn, 1000, 0, 24, 44, false},
		{"udp4", ipPkt(cli4, srv4, ProtoUDP, udpHdr(5, 53, []byte("q"))), key(ProtoUDP, cli4, srv4, 5, 53), 0, 0, 0, 20, 28, false},
		{"udp6 behind options", packettest.V6ExtChain(cli6, srv6, 2), key(ProtoUDP, cli6, srv6, 1, 53), 0, 0, 0, 56, 64, false},
		{"echo4 request", ipPkt(cli4, srv4, ProtoICMP, echoHdr(false, 7, 1, []byte("p"))), key(ProtoICMP, cli4, srv4, 7, 0), 0, 0, 0, 20, 28, true},
		{"echo6 request", ipPkt(cli6, srv6, ProtoICMP, echoHdr(true, 7, 1, []byte("p"))), key(ProtoICMPv6, cli6, srv6, 7, 0), 0, 0, 0, 40, 48, true},
		{"echo4 reply", ipPkt(srv4, cli4, ProtoICMP, mod(echoHdr(false, 7, 1, nil), func(b []byte) { b[0] = 0 })), key(ProtoICMP, srv4, cli4, 7, 0), 0, 0, 0, 20, 28, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var p Parsed
			if r := Parse(tc.pkt, &p); r != ReasonNone {
				t.Fatalf("Parse = %v, want none", r)
			}
			if got, want := p.CT.Key, tc.key; got != want {
				t.Errorf("key = %+v; want %+v", got, want)
			}
			if got, want := p.Family, tc.key.Family; got != want {
				t.Errorf("family = %d; want %d", got, want)
			}
			if p.CT.TCPFlags != tc.flags || p.CT.Seq != tc.seq || p.CT.Ack != tc.ack {
				t.Errorf("flags, seq, ack = %#x, %d, %d; want %#x, %d, %d", p.CT.TCPFlags, p.CT.Seq, p.CT.Ack, tc.flags, tc.seq, tc.ack)
			}
			if p.L4 != tc.l4 || p.Payload != tc.payload || p.End != len(tc.pkt) {
				t.Errorf("l4, payload, end = %d, %d, %d; want %d, %d, %d", p.L4, p.Payload, p.End, tc.l4, tc.payload, len(tc.pkt))
			}
			if got, want := p.CT.PayloadLen, len(tc.pkt)-tc.payload; got != want {
				t.Errorf("payload length = %d; want %d", got, want)
			}
			if got, want := p.CT.Len, len(tc.pkt); got != want {
				t.Errorf("length = %d; want %d", got, want)
			}
			if p.EchoReq != tc.echoReq || p.ICMPErr || p.Trusted {
				t.Errorf("echoReq, icmpErr, trusted = %v, %v, %v; want %v, false, false", p.EchoReq, p.ICMPErr, p.Trusted, tc.echoReq)
			}
		})
	}
}

func TestParseDropReasons(t *testing.T) {
	syn := synPkt(cli4, srv4, 1, 80)
	udp4 := ipPkt(cli4, srv4, ProtoUDP, udpHdr(1, 53, []byte("q")))
	udp6 := ipPkt(cli6, srv6, ProtoUDP, udpHdr(1, 53, []byte("q")))
	unreach := func(quote []byte) []byte {
		return ipPkt(srv4, cli4, ProtoICMP, append([]byte{3, 3, 0, 0, 0, 0, 0, 0}, quote...))
	}
	tests := []struct {
		name string
		pkt  []byte
		want DropReason
	}{
		{"empty", nil, ReasonShort},
		{"short v4", syn[:10], ReasonShort},
		{"short v6", udp6[:39], ReasonShort},
		{"version 5", mod(syn, func(b []byte) { b[0] = 0x55 }), ReasonVersion},
		{"ihl 4", mod(syn, func(b []byte) { b[0] = 0x44 }), ReasonIPHeader},
		{"total length beyond buffer", mod(syn, func(b []byte) { b[3] = 200; fixIPv4(b) }), ReasonIPHeader},
		{"total length below ihl", mod(syn, func(b []byte) { b[2], b[3] = 0, 19; fixIPv4(b) }), ReasonIPHeader},
		{"v6 jumbogram", mod(udp6, func(b []byte) { b[4], b[5] = 0, 0 }), ReasonIPHeader},
		{"v6 payload beyond buffer", mod(udp6, func(b []byte) { b[5] = 200 }), ReasonIPHeader},
		{"ip checksum", mod(syn, func(b []byte) { b[10] ^= 0xff }), ReasonIPChecksum},
		{"fragment", mod(syn, func(b []byte) { b[6] = 0x20; fixIPv4(b) }), ReasonFragment},
		{"later fragment", mod(syn, func(b []byte) { b[7] = 1; fixIPv4(b) }), ReasonFragment},
		{"tcp checksum", mod(syn, func(b []byte) { b[36] ^= 0xff }), ReasonChecksum},
		{"tcp truncated", cut(syn, 39), ReasonTransport},
		{"tcp data offset", mod(syn, func(b []byte) { b[32] = 0x40 }), ReasonTransport},
		{"tcp data offset beyond segment", mod(syn, func(b []byte) { b[32] = 0xf0 }), ReasonTransport},
		{"udp length", mod(udp6, func(b []byte) { b[45] = 200 }), ReasonTransport},
		{"udp truncated", cut(udp4, 27), ReasonTransport},
		{"udp checksum", mod(udp4, func(b []byte) { b[27] ^= 0xff }), ReasonChecksum},
		{"udp6 zero checksum", mod(udp6, func(b []byte) { b[46], b[47] = 0, 0 }), ReasonChecksum},
		{"gre", mod(syn, func(b []byte) { b[9] = 47; fixIPv4(b) }), ReasonProto},
		{"icmpv6 over ipv4", ipPkt(cli4, srv4, ProtoICMPv6, echoHdr(true, 1, 1, nil)), ReasonProto},
		{"v6 fragment", mod(udp6, func(b []byte) { b[6] = ip6Fragment }), ReasonFragment},
		{"v6 no next header", mod(udp6, func(b []byte) { b[6] = 59 }), ReasonProto},
		{"v6 ext loop", packettest.V6ExtChain(cli6, srv6, 20), ReasonExtHeader},
		{"v6 routing type 0 with segments left", v6Ext([3]uint8{ip6Routing, 0, 1}), ReasonRoutingHeader},
		{"v6 routing type 2 passes", v6Ext([3]uint8{ip6Routing, 2, 1}), ReasonNone},
		{"v6 hop-by-hop after destination options", v6Ext([3]uint8{ip6DestOpts, 1, 4}, [3]uint8{ip6HopByHop, 1, 4}), ReasonExtHeader},
		{"v6 ext truncated", mod(packettest.V6ExtChain(cli6, srv6, 1), func(b []byte) { b[41] = 9 }), ReasonExtHeader},
		{"icmp truncated", cut(ipPkt(cli4, srv4, ProtoICMP, echoHdr(false, 1, 1, nil)), 27), ReasonTransport},
		{"icmpv6 truncated", cut(ipPkt(cli6, srv6, ProtoICMP, echoHdr(true, 1, 1, nil)), 47), ReasonTransport},
		{"icmp checksum", mod(ipPkt(cli4, srv4, ProtoICMP, echoHdr(false, 1, 1, nil)), func(b []byte) { b[22] ^= 0xff }), ReasonChecksum},
		{"icmpv6 checksum", mod(ipPkt(cli6, srv6, ProtoICMP, echoHdr(true, 1, 1, nil)), func(b []byte) { b[42] ^= 0xff }), ReasonChecksum},
		{"icmp timestamp", ipPkt(cli4, srv4, ProtoICMP, mod(echoHdr(false, 1, 1, nil), func(b []byte) { b[0] = 13 })), ReasonICMPType},
		{"icmp redirect", ipPkt(srv4, cli4, ProtoICMP, append([]byte{5, 0, 0, 0, 0, 0, 0, 0}, udp4[:28]...)), ReasonICMPType},
		{"neighbour solicitation", ipPkt(cli6, srv6, ProtoICMP, []byte{135, 0, 0, 0, 0, 0, 0, 0}), ReasonICMPType},
		{"icmp error quoting junk", unreach([]byte{1, 2, 3}), ReasonICMPQuote},
		{"icmp error quoting a later fragment", unreach(mod(udp4, func(b []byte) { b[7] = 1 })), ReasonICMPQuote},
		{"icmp error quoting ipv6", unreach(udp6), ReasonICMPQuote},
		{"icmp error quoting an echo reply", unreach(ipPkt(cli4, srv4, ProtoICMP, mod(echoHdr(false, 1, 1, nil), func(b []byte) { b[0] = 0 }))), ReasonICMPQuote},
		{"icmp error quoting an error", unreach(unreach(udp4)[:28]), ReasonICMPQuote},
		{"icmp error quoting icmpv6 over ipv4", unreach(ipPkt(cli4, srv4, ProtoICMPv6, echoHdr(true, 1, 1, nil))), ReasonICMPQuote},
		{"icmp error quoting gre", unreach(mod(udp4, func(b []byte) { b[9] = 47 })), ReasonICMPQuote},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var p Parsed
			if got := Parse(tc.pkt, &p); got != tc.want {
				t.Errorf("Parse = %v; want %v", got, tc.want)
			}
		})
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
		{"syn options", TCPSyn, synOpts, 7, true, 0},
		{"syn without options", TCPSyn, nil, -1, false, 0},
		{"window scale clamped", TCPSyn, []byte{3, 3, 20, 0}, 14, false, 0},
		{"window scale ignored without SYN", TCPAck, []byte{3, 3, 7, 0}, -1, false, 0},
		{"sack permitted ignored without SYN", TCPAck, []byte{4, 2, 0, 0}, -1, false, 0},
		{"sack edge across wrap", TCPAck, sackOpts, -1, false, 0x20},
		{"bad length stops the walk", TCPSyn, []byte{3, 3, 5, 8, 1, 4, 2, 0}, 5, false, 0},
		{"zero length stops the walk", TCPSyn, []byte{8, 0, 3, 3, 5, 0, 0, 0}, -1, false, 0},
		{"end of list", TCPSyn, []byte{0, 3, 3, 5}, -1, false, 0},
		{"truncated kind", TCPSyn, []byte{1, 1, 1, 3}, -1, false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := ipPkt(cli4, srv4, ProtoTCP, tcpHdrOpts(1, 80, 1, 0, tc.flags, tc.opts, nil))
			var p Parsed
			if r := Parse(b, &p); r != ReasonNone {
				t.Fatalf("parse: %v", r)
			}
			if !p.CT.TCPOpts || p.CT.WScale != tc.wscale || p.CT.SACKPerm != tc.sackPerm || p.CT.SACKEdge != tc.edge {
				t.Errorf("opts %v wscale %d sackperm %v edge %#x; want true %d %v %#x",
					p.CT.TCPOpts, p.CT.WScale, p.CT.SACKPerm, p.CT.SACKEdge, tc.wscale, tc.sackPerm, tc.edge)
			}
			if p.Payload != 40+len(tc.opts) {
				t.Errorf("payload offset %d, want %d", p.Payload, 40+len(tc.opts))
			}
		})
	}
}

func TestParseQuote(t *testing.T) {
	orig := ipPkt(cli4, srv4, ProtoTCP, tcpHdr(40000, 80, 0xdeadbeef, 0, TCPAck, []byte("data")))
	var op Parsed
	Parse(orig, &op)
	out := make([]byte, IPv6MinMTU)
	n := ICMPError(out, orig, &op, PortUnreachable)
	var p Parsed
	if r := Parse(out[:n], &p); r != ReasonNone || !p.ICMPErr {
		t.Fatalf("parse: %v, icmpErr %v", r, p.ICMPErr)
	}
	if p.Quote.Key != op.CT.Key || p.Quote.Seq != 0xdeadbeef || p.Quote.L4Len != 8 {
		t.Errorf("quote %+v, want key %+v seq 0xdeadbeef and 8 transport bytes", p.Quote, op.CT.Key)
	}
	echo := ipPkt(cli6, srv6, ProtoICMP, echoHdr(true, 7, 1, []byte("ping")))
	Parse(echo, &op)
	n = ICMPError(out, echo, &op, PortUnreachable)
	if r := Parse(out[:n], &p); r != ReasonNone || p.Quote.ICMPType != 128 || p.Quote.Key.SrcPort != 7 || p.Quote.L4Len != 12 {
		t.Errorf("v6 echo quote: %v %+v", r, p.Quote)
	}
}

func TestParseOutbound(t *testing.T) {
	syn := synPkt(cli4, srv4, 1, 80)
	tests := []struct {
		name    string
		pkt     []byte
		inbound DropReason
		trusted DropReason
	}{
		{"good", syn, ReasonNone, ReasonNone},
		{"ip checksum", mod(syn, func(b []byte) { b[10] ^= 0xff }), ReasonIPChecksum, ReasonNone},
		{"tcp checksum", mod(syn, func(b []byte) { b[36] ^= 0xff }), ReasonChecksum, ReasonNone},
		{"udp6 zero checksum", mod(ipPkt(cli6, srv6, ProtoUDP, udpHdr(1, 53, nil)), func(b []byte) { b[46], b[47] = 0, 0 }), ReasonChecksum, ReasonNone},
		// gVisor's own neighbour discovery must not reach the TUN.
		{"neighbour solicitation", ipPkt(cli6, srv6, ProtoICMP, []byte{135, 0, 0, 0, 0, 0, 0, 0}), ReasonICMPType, ReasonICMPType},
		{"mld report", ipPkt(cli6, srv6, ProtoICMP, []byte{143, 0, 0, 0, 0, 0, 0, 0}), ReasonICMPType, ReasonICMPType},
		{"fragment", mod(syn, func(b []byte) { b[6] = 0x20 }), ReasonIPChecksum, ReasonFragment},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var p Parsed
			if got := Parse(tc.pkt, &p); got != tc.inbound {
				t.Errorf("Parse = %v; want %v", got, tc.inbound)
			}
			if got := ParseOutbound(tc.pkt, &p); got != tc.trusted {
				t.Errorf("ParseOutbound = %v; want %v", got, tc.trusted)
			}
			if !p.Trusted {
				t.Error("ParseOutbound left Trusted unset")
			}
		})
	}
}

// TestParseIgnoresLinkPadding: bytes after the IP total length are not
// the packet's, whatever they hold.
func TestParseIgnoresLinkPadding(t *testing.T) {
	for _, fam := range families() {
		t.Run(fam.name, func(t *testing.T) {
			pkt := ipPkt(fam.cli, fam.srv, ProtoUDP, udpHdr(1, 53, []byte("q")))
			padded := append(append([]byte(nil), pkt...), 0xde, 0xad, 0xbe, 0xef)
			var p Parsed
			if r := Parse(padded, &p); r != ReasonNone {
				t.Fatalf("Parse = %v; want none", r)
			}
			if p.End != len(pkt) || p.CT.Len != len(pkt) || p.CT.PayloadLen != 1 {
				t.Errorf("end, len, payload = %d, %d, %d; want %d, %d, 1", p.End, p.CT.Len, p.CT.PayloadLen, len(pkt), len(pkt))
			}
		})
	}
}

func TestParseNoAllocs(t *testing.T) {
	for name, b := range seedPackets() {
		var p Parsed
		if got := testing.AllocsPerRun(100, func() { Parse(b, &p); ParseOutbound(b, &p) }); got != 0 {
			t.Errorf("%s: %.1f allocations per parse; want 0", name, got)
		}
	}
}

func BenchmarkParseTCP(b *testing.B) {
	pkt := ipPkt(cli4, srv4, ProtoTCP, tcpHdrOpts(40000, 443, 1, 2, TCPPsh|TCPAck, []byte{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2}, bytes.Repeat([]byte("d"), 1400)))
	var p Parsed
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for b.Loop() {
		if Parse(pkt, &p) != ReasonNone {
			b.Fatal("segment does not parse")
		}
	}
}

// v6Ext is a UDP packet behind the given 8-byte extension headers, each
// written as its type and the two bytes after its length (a routing
// header's type and segments left); next-header fields chain them.
func v6Ext(hdrs ...[3]uint8) []byte {
	var ext []byte
	for i, h := range hdrs {
		next := uint8(ProtoUDP)
		if i+1 < len(hdrs) {
			next = hdrs[i+1][0]
		}
		ext = append(ext, next, 0, h[1], h[2], 0, 0, 0, 0)
	}
	b := packettest.IP(cli6, srv6, hdrs[0][0], append(ext, packettest.UDPHdr(1, 53, []byte("q"))...))
	packettest.FillChecksum(b, 6, 40+len(ext), ProtoUDP)
	return b
}
