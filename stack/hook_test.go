package stack

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/tungate/tungate/stack/packet/packettest"

	"github.com/tungate/tungate/stack/packet"
	"github.com/tungate/tungate/stack/verdict"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

func families() []struct {
	name     string
	cli, srv netip.Addr
} {
	return []struct {
		name     string
		cli, srv netip.Addr
	}{{"v4", cli4, srv4}, {"v6", cli6, srv6}}
}

// checkGVisorValid cross-checks a synthesized packet with gVisor's own
// header validation, so our checksum code is not only checked by itself.
func checkGVisorValid(t *testing.T, b []byte) {
	t.Helper()
	var src, dst tcpip.Address
	var l4 []byte
	var proto uint8
	if b[0]>>4 == 4 {
		ip := header.IPv4(b)
		if !ip.IsValid(len(b)) || !ip.IsChecksumValid() {
			t.Fatalf("invalid IPv4 header: % x", b[:20])
		}
		src, dst, l4, proto = ip.SourceAddress(), ip.DestinationAddress(), ip.Payload(), ip.Protocol()
	} else {
		ip := header.IPv6(b)
		if !ip.IsValid(len(b)) {
			t.Fatalf("invalid IPv6 header: % x", b[:40])
		}
		src, dst, l4, proto = ip.SourceAddress(), ip.DestinationAddress(), ip.Payload(), ip.NextHeader()
	}
	switch proto {
	case packet.ProtoTCP:
		if !header.TCP(l4).IsChecksumValid(src, dst, 0, 0) {
			t.Fatal("bad TCP checksum")
		}
	case packet.ProtoICMP:
		if !onesSumOK(l4) {
			t.Fatal("bad ICMP checksum")
		}
	case packet.ProtoICMPv6:
		cs := header.ICMPv6Checksum(header.ICMPv6ChecksumParams{Header: header.ICMPv6(l4[:8]), Src: src, Dst: dst, PayloadCsum: checksumOf(l4[8:]), PayloadLen: len(l4) - 8})
		if cs != binary.BigEndian.Uint16(l4[2:]) {
			t.Fatalf("bad ICMPv6 checksum: got %#x want %#x", binary.BigEndian.Uint16(l4[2:]), cs)
		}
	}
}

func TestRejectTCPReset(t *testing.T) {
	for _, fam := range families() {
		t.Run(fam.name, func(t *testing.T) {
			h := newHarness(t, harnessOpts{})
			h.mem.Inject(synPkt(fam.cli, fam.srv, 40000, portReject))
			rst := h.next(t, nil)
			checkGVisorValid(t, rst)
			var p packet.Parsed
			if r := packet.Parse(rst, &p); r != packet.ReasonNone {
				t.Fatalf("reply does not parse: %v", r)
			}
			if got, want := p.CT.Key.SrcAddr(), fam.srv; got != want {
				t.Errorf("RST src = %v, want %v", got, want)
			}
			if got, want := p.CT.Key.DstAddr(), fam.cli; got != want {
				t.Errorf("RST dst = %v, want %v", got, want)
			}
			if p.CT.Key.SrcPort != portReject || p.CT.Key.DstPort != 40000 {
				t.Errorf("RST ports = %d->%d, want %d->40000", p.CT.Key.SrcPort, p.CT.Key.DstPort, portReject)
			}
			if got, want := p.CT.TCPFlags, uint8(0x14); got != want {
				t.Errorf("RST flags = %#x, want RST|ACK %#x", got, want)
			}
			if got, want := p.CT.Ack, uint32(1001); got != want {
				t.Errorf("RST ack = %d, want seq+1 = %d", got, want)
			}
			if got := h.s.Stats().PolicyRejects; got != 1 {
				t.Errorf("PolicyRejects = %d, want 1", got)
			}
			waitFor(t, "decision log line", func() bool { return strings.Contains(h.log.String(), `"rule":"reject-81"`) })
			line := h.log.String()
			for _, want := range []string{`"action":"reject"`, `"proto":"tcp"`, `"reason":"rule"`, `"dst":"` + netip.AddrPortFrom(fam.srv, portReject).String() + `"`} {
				if !strings.Contains(line, want) {
					t.Errorf("decision log %s lacks %s", line, want)
				}
			}
		})
	}
}

func TestRejectUDPPortUnreachable(t *testing.T) {
	for _, fam := range families() {
		t.Run(fam.name, func(t *testing.T) {
			h := newHarness(t, harnessOpts{})
			big := bytes.Repeat([]byte("x"), 1400)
			if fam.cli.Is4() {
				big = big[:100]
			}
			orig := ipPkt(fam.cli, fam.srv, packet.ProtoUDP, udpHdr(40001, portUDPReject, big))
			h.mem.Inject(orig)
			icmp := h.next(t, nil)
			checkGVisorValid(t, icmp)
			var p packet.Parsed
			if r := packet.Parse(icmp, &p); r != packet.ReasonNone {
				t.Fatalf("reply does not parse: %v", r)
			}
			if !p.ICMPErr {
				t.Fatalf("reply is not an ICMP error: type %d", p.CT.ICMPType)
			}
			wantType, wantCode, quote := uint8(3), uint8(3), orig[:28]
			if fam.cli.Is6() {
				wantType, wantCode, quote = 1, 4, orig[:packet.IPv6MinMTU-48]
			}
			if p.CT.ICMPType != wantType || p.CT.ICMPCode != wantCode {
				t.Errorf("type/code = %d/%d, want %d/%d", p.CT.ICMPType, p.CT.ICMPCode, wantType, wantCode)
			}
			if got := icmp[p.L4+8:]; !bytes.Equal(got, quote) {
				t.Errorf("quoted %d bytes, want the first %d of the offending packet", len(got), len(quote))
			}
			if len(icmp) > packet.IPv6MinMTU {
				t.Errorf("ICMP error is %d bytes, more than %d", len(icmp), packet.IPv6MinMTU)
			}
			var op packet.Parsed
			packet.Parse(orig, &op)
			if p.Quote.Key != op.CT.Key {
				t.Errorf("quoted key %+v, want %+v", p.Quote.Key, op.CT.Key)
			}
		})
	}
}

func TestDropAndInvalid(t *testing.T) {
	h := newHarness(t, harnessOpts{noRun: true})
	var p packet.Parsed
	if got := h.s.hook(synPkt(cli4, srv4, 40000, portDrop), &p); got != verdict.Drop {
		t.Errorf("SYN to dropped port: got action %d, want drop", got)
	}
	// An ACK with no flow is INVALID and must not create one.
	ack := ipPkt(cli4, srv4, packet.ProtoTCP, tcpHdr(40000, portAllow, 1, 1, 0x10, nil))
	if got := h.s.hook(ack, &p); got != verdict.Drop {
		t.Errorf("stray ACK: got action %d, want drop", got)
	}
	st := h.s.Stats()
	if st.PolicyDrops != 1 || st.Invalid != 1 {
		t.Errorf("PolicyDrops, Invalid = %d, %d; want 1, 1", st.PolicyDrops, st.Invalid)
	}
	if h.ct.Len() != 0 {
		t.Errorf("conntrack has %d flows after drops, want 0", h.ct.Len())
	}
}

func TestMalformedCounted(t *testing.T) {
	syn := synPkt(cli4, srv4, 1, portAllow)
	mod := func(b []byte, f func([]byte)) []byte { c := append([]byte(nil), b...); f(c); return c }
	fixIP := func(b []byte) {
		b[10], b[11] = 0, 0
		cs := header.IPv4(b).CalculateChecksum()
		binary.BigEndian.PutUint16(b[10:], ^cs)
	}
	udp6 := ipPkt(cli6, srv6, packet.ProtoUDP, udpHdr(1, 53, []byte("q")))
	tests := []struct {
		name string
		pkt  []byte
		want packet.DropReason
	}{
		{"empty", nil, packet.ReasonShort},
		{"short v4", syn[:10], packet.ReasonShort},
		{"version 5", mod(syn, func(b []byte) { b[0] = 0x55 }), packet.ReasonVersion},
		{"ihl 4", mod(syn, func(b []byte) { b[0] = 0x44 }), packet.ReasonIPHeader},
		{"total length beyond buffer", mod(syn, func(b []byte) { b[3] = 200; fixIP(b) }), packet.ReasonIPHeader},
		{"ip checksum", mod(syn, func(b []byte) { b[10] ^= 0xff }), packet.ReasonIPChecksum},
		{"fragment", mod(syn, func(b []byte) { b[6] = 0x20; fixIP(b) }), packet.ReasonFragment},
		{"tcp checksum", mod(syn, func(b []byte) { b[36] ^= 0xff }), packet.ReasonChecksum},
		{"tcp data offset", mod(syn, func(b []byte) { b[32] = 0x40 }), packet.ReasonTransport},
		{"udp length", mod(udp6, func(b []byte) { b[45] = 200 }), packet.ReasonTransport},
		{"udp6 zero checksum", mod(udp6, func(b []byte) { b[46], b[47] = 0, 0 }), packet.ReasonChecksum},
		{"gre", mod(syn, func(b []byte) { b[9] = 47; fixIP(b) }), packet.ReasonProto},
		{"v6 fragment", mod(udp6, func(b []byte) { b[6] = byte(header.IPv6FragmentExtHdrIdentifier) }), packet.ReasonFragment},
		{"v6 ext loop", packettest.V6ExtChain(cli6, srv6, 20), packet.ReasonExtHeader},
		{"icmp timestamp", ipPkt(cli4, srv4, packet.ProtoICMP, mod(echoHdr(false, 1, 1, nil), func(b []byte) { b[0] = 13 })), packet.ReasonICMPType},
		{"icmp error quoting junk", ipPkt(cli4, srv4, packet.ProtoICMP, []byte{3, 3, 0, 0, 0, 0, 0, 0, 1, 2, 3}), packet.ReasonICMPQuote},
	}
	h := newHarness(t, harnessOpts{noRun: true})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := h.s.Stats().Malformed[tc.want.String()]
			var p packet.Parsed
			if got := h.s.hook(tc.pkt, &p); got != verdict.Drop {
				t.Errorf("action = %d, want drop", got)
			}
			if got := h.s.Stats().Malformed[tc.want.String()] - before; got != 1 {
				t.Errorf("Malformed[%s] grew by %d, want 1 (all: %v)", tc.want, got, h.s.Stats().Malformed)
			}
		})
	}
}

func TestEchoForwarded(t *testing.T) {
	for _, fam := range families() {
		t.Run(fam.name, func(t *testing.T) {
			failed := make(chan struct{})
			echo := &fakeEcho{fn: func(dst netip.Addr, id, seq uint16, payload []byte) ([]byte, error) {
				if dst != fam.srv {
					return nil, errors.New("wrong destination " + dst.String())
				}
				if seq == 1 {
					close(failed)
					return nil, errors.New("no reply")
				}
				return payload, nil
			}}
			h := newHarness(t, harnessOpts{echo: echo})
			payload := []byte("abcdefgh-ping")
			h.mem.Inject(ipPkt(fam.cli, fam.srv, packet.ProtoICMP, echoHdr(fam.cli.Is6(), 0x4242, 1, payload)))
			<-failed
			h.mem.Inject(ipPkt(fam.cli, fam.srv, packet.ProtoICMP, echoHdr(fam.cli.Is6(), 0x4242, 2, payload)))
			rep := h.next(t, nil)
			checkGVisorValid(t, rep)
			var p packet.Parsed
			if r := packet.Parse(rep, &p); r != packet.ReasonNone {
				t.Fatalf("echo reply does not parse: %v", r)
			}
			wantType := uint8(0)
			if fam.cli.Is6() {
				wantType = 129
			}
			seq := binary.BigEndian.Uint16(rep[p.L4+6:])
			if p.CT.ICMPType != wantType || seq != 2 || p.CT.Key.SrcPort != 0x4242 {
				t.Errorf("reply type %d seq %d id %#x; want type %d seq 2 id 0x4242 (seq 1 had no reply)", p.CT.ICMPType, seq, p.CT.Key.SrcPort, wantType)
			}
			if p.CT.Key.SrcAddr() != fam.srv || p.CT.Key.DstAddr() != fam.cli {
				t.Errorf("reply %v -> %v, want %v -> %v", p.CT.Key.SrcAddr(), p.CT.Key.DstAddr(), fam.srv, fam.cli)
			}
			if !bytes.Equal(rep[p.Payload:], payload) {
				t.Errorf("reply payload %q, want %q", rep[p.Payload:], payload)
			}
			if st := h.s.Stats(); st.EchoForwarded != 2 || st.EchoReplies != 1 {
				t.Errorf("EchoForwarded, EchoReplies = %d, %d; want 2, 1", st.EchoForwarded, st.EchoReplies)
			}
		})
	}
}

// establishedUDP returns a harness (not running) with one committed UDP
// flow and a packet of it.
func establishedUDP(t testing.TB) (*harness, []byte) {
	h := newHarness(t, harnessOpts{noRun: true})
	pkt := ipPkt(cli4, srv4, packet.ProtoUDP, udpHdr(40000, portUDPAllow, bytes.Repeat([]byte("d"), 512)))
	var p packet.Parsed
	if got := h.s.hook(pkt, &p); got != verdict.Pass {
		t.Fatalf("first packet: action %d, want inject", got)
	}
	if got := h.s.hook(pkt, &p); got != verdict.Pass {
		t.Fatalf("second packet: action %d, want inject", got)
	}
	return h, pkt
}

func TestHookEstablishedNoAllocs(t *testing.T) {
	h, pkt := establishedUDP(t)
	var p packet.Parsed
	allocs := testing.AllocsPerRun(1000, func() {
		if h.s.hook(pkt, &p) != verdict.Pass {
			t.Fatal("established packet not injected")
		}
	})
	if allocs != 0 {
		t.Errorf("hook on an established flow allocates %.1f times per packet, want 0", allocs)
	}
}

func BenchmarkHookEstablished(b *testing.B) {
	h, pkt := establishedUDP(b)
	var p packet.Parsed
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for b.Loop() {
		h.s.hook(pkt, &p)
	}
}

// checksumOf and onesSumOK help checkGVisorValid.
func checksumOf(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return uint16(sum)
}

func onesSumOK(b []byte) bool { return checksumOf(b) == 0xffff }

func TestTrackOutboundNoAllocs(t *testing.T) {
	h, _ := establishedUDP(t)
	reply := ipPkt(srv4, cli4, packet.ProtoUDP, udpHdr(portUDPAllow, 40000, []byte("answer")))
	allocs := testing.AllocsPerRun(1000, func() {
		if _, ok := h.s.trackOutbound(reply); !ok {
			t.Fatal("reply not passed")
		}
	})
	if allocs != 0 {
		t.Errorf("trackOutbound allocates %.1f times per packet, want 0", allocs)
	}
	// gVisor's own neighbour discovery must not reach the TUN.
	ns := ipPkt(cli6, srv6, packet.ProtoICMP, []byte{135, 0, 0, 0, 0, 0, 0, 0})
	if _, ok := h.s.trackOutbound(ns); ok {
		t.Error("neighbour solicitation passed to the TUN")
	}
}
