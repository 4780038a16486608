package packet

import (
	"bytes"
	"net/netip"
	"strconv"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tungate/tungate/conntrack"
)

// dirty is a buffer of n bytes of junk, so a builder that leaves a field
// unwritten is caught.
func dirty(n int) []byte { return bytes.Repeat([]byte{0xa5}, n) }

// mustParse parses a test packet that must be valid.
func mustParse(t testing.TB, b []byte) *Parsed {
	t.Helper()
	var p Parsed
	if r := Parse(b, &p); r != ReasonNone {
		t.Fatalf("test packet does not parse: %v", r)
	}
	return &p
}

// checkIPHeader checks the IP header of a synthesized packet b with
// gVisor's accessors: no options, TTL 64, and for IPv4 DF with ID 0.
func checkIPHeader(t *testing.T, b []byte, src, dst netip.Addr, proto uint8) (l4 []byte) {
	t.Helper()
	var gotSrc, gotDst netip.Addr
	if src.Is4() {
		ip := header.IPv4(b)
		if got, want := header.IPVersion(b), 4; got != want {
			t.Fatalf("IP version = %d; want %d", got, want)
		}
		tos, _ := ip.TOS()
		if ip.HeaderLength() != 20 || tos != 0 || ip.ID() != 0 || ip.Flags() != header.IPv4FlagDontFragment || ip.FragmentOffset() != 0 {
			t.Errorf("IPv4 ihl %d tos %d id %d flags %#x offset %d; want 20 0 0 DF 0", ip.HeaderLength(), tos, ip.ID(), ip.Flags(), ip.FragmentOffset())
		}
		if ip.TTL() != replyTTL || ip.Protocol() != proto || int(ip.TotalLength()) != len(b) {
			t.Errorf("IPv4 ttl %d proto %d total %d; want %d %d %d", ip.TTL(), ip.Protocol(), ip.TotalLength(), replyTTL, proto, len(b))
		}
		gotSrc, _ = netip.AddrFromSlice(ip.SourceAddressSlice())
		gotDst, _ = netip.AddrFromSlice(ip.DestinationAddressSlice())
		l4 = ip.Payload()
	} else {
		ip := header.IPv6(b)
		if got, want := header.IPVersion(b), 6; got != want {
			t.Fatalf("IP version = %d; want %d", got, want)
		}
		tc, flow := ip.TOS()
		if tc != 0 || flow != 0 || ip.HopLimit() != replyTTL || ip.NextHeader() != proto || int(ip.PayloadLength()) != len(b)-40 {
			t.Errorf("IPv6 class %d flow %d hops %d next %d payload %d; want 0 0 %d %d %d", tc, flow, ip.HopLimit(), ip.NextHeader(), ip.PayloadLength(), replyTTL, proto, len(b)-40)
		}
		gotSrc, _ = netip.AddrFromSlice(ip.SourceAddressSlice())
		gotDst, _ = netip.AddrFromSlice(ip.DestinationAddressSlice())
		l4 = ip.Payload()
	}
	if gotSrc != src || gotDst != dst {
		t.Errorf("addresses %v -> %v; want %v -> %v", gotSrc, gotDst, src, dst)
	}
	checkChecksums(t, b)
	return l4
}

func TestTCPReset(t *testing.T) {
	tests := []struct {
		name      string
		flags     uint8
		seq, ack  uint32
		payload   string
		wantSeq   uint32
		wantAck   uint32
		wantFlags uint8
	}{
		// RFC 9293 §3.10.7.1: without ACK, <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>.
		{"syn", TCPSyn, 1000, 0, "", 0, 1001, TCPRst | TCPAck},
		{"syn with data", TCPSyn, 1000, 0, "fast open", 0, 1010, TCPRst | TCPAck},
		{"fin", TCPFin, 10, 0, "xy", 0, 13, TCPRst | TCPAck},
		{"syn fin", TCPSyn | TCPFin, 1, 0, "", 0, 3, TCPRst | TCPAck},
		{"null scan", 0, 42, 0, "", 0, 42, TCPRst | TCPAck},
		{"syn at the wrap", TCPSyn, 0xffffffff, 0, "", 0, 0, TCPRst | TCPAck},
		// With ACK: <SEQ=SEG.ACK><CTL=RST>.
		{"ack with data", TCPAck | TCPPsh, 5, 77, "abc", 77, 0, TCPRst},
		{"fin ack", TCPFin | TCPAck, 5, 78, "", 78, 0, TCPRst},
	}
	for _, fam := range families() {
		for _, tc := range tests {
			t.Run(fam.name+" "+tc.name, func(t *testing.T) {
				in := ipPkt(fam.cli, fam.srv, ProtoTCP, tcpHdr(40000, 81, tc.seq, tc.ack, tc.flags, []byte(tc.payload)))
				p := mustParse(t, in)
				out := dirty(IPv6MinMTU)
				rst := out[:TCPReset(out, p)]
				seg := header.TCP(checkIPHeader(t, rst, fam.srv, fam.cli, ProtoTCP))
				if got, want := len(seg), header.TCPMinimumSize; got != want {
					t.Fatalf("segment length = %d; want %d", got, want)
				}
				if seg.SourcePort() != 81 || seg.DestinationPort() != 40000 {
					t.Errorf("ports %d -> %d; want 81 -> 40000", seg.SourcePort(), seg.DestinationPort())
				}
				if got, want := seg.SequenceNumber(), tc.wantSeq; got != want {
					t.Errorf("seq = %d; want %d", got, want)
				}
				if got, want := seg.AckNumber(), tc.wantAck; got != want {
					t.Errorf("ack = %d; want %d", got, want)
				}
				if got, want := uint8(seg.Flags()), tc.wantFlags; got != want {
					t.Errorf("flags = %#x; want %#x", got, want)
				}
				if seg.DataOffset() != 20 || seg.WindowSize() != 0 || seg.UrgentPointer() != 0 {
					t.Errorf("data offset %d window %d urgent %d; want 20 0 0", seg.DataOffset(), seg.WindowSize(), seg.UrgentPointer())
				}
				if CanReplyTo(mustParse(t, rst)) {
					t.Error("a reset may be answered")
				}
				old := dirty(IPv6MinMTU)
				if want := old[:oldBuildTCPReset(old, in, p)]; !bytes.Equal(rst, want) {
					t.Errorf("reset differs from the old builder's:\n got % x\nwant % x", rst, want)
				}
			})
		}
	}
}

func TestICMPError(t *testing.T) {
	udp := func(src, dst netip.Addr, n int) []byte {
		return ipPkt(src, dst, ProtoUDP, udpHdr(40001, 54, bytes.Repeat([]byte("x"), n)))
	}
	padded := func(b []byte) []byte { return append(append([]byte(nil), b...), 0xee, 0xee) }
	tests := []struct {
		name      string
		pkt       []byte
		kind      Unreachable
		wantType  uint8
		wantCode  uint8
		wantQuote int // bytes of pkt quoted
	}{
		// RFC 792: the IP header plus the first 8 data bytes.
		{"v4 port unreachable", udp(cli4, srv4, 100), PortUnreachable, 3, 3, 28},
		{"v4 admin prohibited", udp(cli4, srv4, 100), AdminProhibited, 3, 13, 28},
		{"v4 ip options", v4Options(udp(cli4, srv4, 100)), PortUnreachable, 3, 3, 32},
		{"v4 tcp", synPkt(cli4, srv4, 40001, 54), PortUnreachable, 3, 3, 28},
		{"v4 echo", ipPkt(cli4, srv4, ProtoICMP, echoHdr(false, 1, 1, nil)), AdminProhibited, 3, 13, 28},
		// RFC 4443 §2.4 (c): as much as fits in the minimum MTU.
		{"v6 port unreachable", udp(cli6, srv6, 100), PortUnreachable, 1, 4, 148},
		{"v6 admin prohibited", udp(cli6, srv6, 100), AdminProhibited, 1, 1, 148},
		{"v6 cut at the minimum MTU", udp(cli6, srv6, 1400), PortUnreachable, 1, 4, IPv6MinMTU - 48},
		{"v6 just fits", udp(cli6, srv6, IPv6MinMTU-48-48), PortUnreachable, 1, 4, IPv6MinMTU - 48},
		{"v6 link padding not quoted", padded(udp(cli6, srv6, 10)), PortUnreachable, 1, 4, 58},
		{"v4 link padding", padded(udp(cli4, srv4, 0)), PortUnreachable, 3, 3, 28},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := mustParse(t, tc.pkt)
			cli, srv := p.CT.Key.SrcAddr(), p.CT.Key.DstAddr()
			proto := uint8(ProtoICMP)
			if p.Family == 6 {
				proto = ProtoICMPv6
			}
			out := dirty(IPv6MinMTU)
			pkt := out[:ICMPError(out, tc.pkt, p, tc.kind)]
			if len(pkt) > IPv6MinMTU {
				t.Errorf("error is %d bytes, more than %d", len(pkt), IPv6MinMTU)
			}
			m := header.ICMPv4(checkIPHeader(t, pkt, srv, cli, proto))
			if got, want := len(m), 8+tc.wantQuote; got != want {
				t.Fatalf("ICMP message length = %d; want %d", got, want)
			}
			if uint8(m.Type()) != tc.wantType || uint8(m.Code()) != tc.wantCode {
				t.Errorf("type/code = %d/%d; want %d/%d", m.Type(), m.Code(), tc.wantType, tc.wantCode)
			}
			if got := m[4:8]; !bytes.Equal(got, []byte{0, 0, 0, 0}) {
				t.Errorf("unused word = % x; want zeros", got)
			}
			if got, want := m.Payload(), tc.pkt[:tc.wantQuote]; !bytes.Equal(got, want) {
				t.Errorf("quote = % x\nwant % x", got, want)
			}
			if q := mustParse(t, pkt); !q.ICMPErr || q.Quote.Key != p.CT.Key {
				t.Errorf("parses back as error %v quoting %+v; want %+v", q.ICMPErr, q.Quote.Key, p.CT.Key)
			}
			old := dirty(IPv6MinMTU)
			if want := old[:oldBuildICMPError(old, tc.pkt, p, tc.kind)]; !bytes.Equal(pkt, want) {
				t.Errorf("error differs from the old builder's:\n got % x\nwant % x", pkt, want)
			}
		})
	}
}

func TestEchoReply(t *testing.T) {
	for _, fam := range families() {
		for _, payload := range []string{"", "abcdefgh-ping", "odd"} {
			t.Run(fam.name+" "+strconv.Quote(payload), func(t *testing.T) {
				req := ipPkt(fam.cli, fam.srv, ProtoICMP, echoHdr(fam.cli.Is6(), 0x4242, 9, []byte(payload)))
				p := mustParse(t, req)
				seq := p.EchoSeq(req)
				if seq != 9 {
					t.Fatalf("EchoSeq = %d; want 9", seq)
				}
				out := dirty(IPv6MinMTU)
				rep := out[:EchoReply(out, p.Family, &p.CT.Key, seq, req[p.Payload:p.End])]
				proto, wantType := uint8(ProtoICMP), uint8(header.ICMPv4EchoReply)
				if fam.cli.Is6() {
					proto, wantType = ProtoICMPv6, uint8(header.ICMPv6EchoReply)
				}
				m := header.ICMPv4(checkIPHeader(t, rep, fam.srv, fam.cli, proto))
				if uint8(m.Type()) != wantType || m.Code() != 0 {
					t.Errorf("type/code = %d/%d; want %d/0", m.Type(), m.Code(), wantType)
				}
				if m.Ident() != 0x4242 || m.Sequence() != 9 {
					t.Errorf("ident %#x seq %d; want 0x4242 9", m.Ident(), m.Sequence())
				}
				if got := string(m.Payload()); got != payload {
					t.Errorf("payload = %q; want %q", got, payload)
				}
				q := mustParse(t, rep)
				if q.EchoReq || q.CT.Key != p.CT.Key.Original(conntrack.DirReply) {
					t.Errorf("parses back as request %v with key %+v; want a reply of the request's flow", q.EchoReq, q.CT.Key)
				}
				old := dirty(IPv6MinMTU)
				if want := old[:oldBuildEchoReply(old, p.Family, &p.CT.Key, seq, req[p.Payload:p.End])]; !bytes.Equal(rep, want) {
					t.Errorf("reply differs from the old builder's:\n got % x\nwant % x", rep, want)
				}
			})
		}
	}
}

func TestBuildersNoAllocs(t *testing.T) {
	for _, fam := range families() {
		syn := mustParse(t, synPkt(fam.cli, fam.srv, 40000, 81))
		udpPkt := ipPkt(fam.cli, fam.srv, ProtoUDP, udpHdr(40000, 54, bytes.Repeat([]byte("x"), 1400)))
		udp := mustParse(t, udpPkt)
		echo := mustParse(t, ipPkt(fam.cli, fam.srv, ProtoICMP, echoHdr(fam.cli.Is6(), 1, 2, []byte("ping"))))
		out := make([]byte, IPv6MinMTU)
		payload := []byte("ping")
		builders := map[string]func(){
			"TCPReset":        func() { TCPReset(out, syn) },
			"PortUnreachable": func() { ICMPError(out, udpPkt, udp, PortUnreachable) },
			"AdminProhibited": func() { ICMPError(out, udpPkt, udp, AdminProhibited) },
			"EchoReply":       func() { EchoReply(out, echo.Family, &echo.CT.Key, 2, payload) },
			"CanReplyTo":      func() { CanReplyTo(udp) },
			"FlowHash":        func() { FlowHash(&udp.CT.Key) },
		}
		for name, f := range builders {
			if got := testing.AllocsPerRun(100, f); got != 0 {
				t.Errorf("%s %s: %.1f allocations per call; want 0", fam.name, name, got)
			}
		}
	}
}

func BenchmarkTCPReset(b *testing.B) {
	p := mustParse(b, synPkt(cli4, srv4, 40000, 81))
	out := make([]byte, IPv6MinMTU)
	b.ReportAllocs()
	for b.Loop() {
		TCPReset(out, p)
	}
}

func BenchmarkICMPErrorV6(b *testing.B) {
	pkt := ipPkt(cli6, srv6, ProtoUDP, udpHdr(40000, 54, bytes.Repeat([]byte("x"), 1400)))
	p := mustParse(b, pkt)
	out := make([]byte, IPv6MinMTU)
	b.ReportAllocs()
	for b.Loop() {
		ICMPError(out, pkt, p, PortUnreachable)
	}
}
