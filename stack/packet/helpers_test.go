package packet

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// Test addresses: clients in 198.18.1.0/24 and 2001:2:0:1::/64, servers in
// 198.18.2.0/24 and 2001:2:0:2::/64.
var (
	cli4 = netip.MustParseAddr("198.18.1.2")
	srv4 = netip.MustParseAddr("198.18.2.1")
	cli6 = netip.MustParseAddr("2001:2:0:1::2")
	srv6 = netip.MustParseAddr("2001:2:0:2::1")
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

// One-line packet builders. They compute correct checksums unless the
// caller breaks them afterwards.

func tcpHdr(sport, dport uint16, seq, ack uint32, flags uint8, payload []byte) []byte {
	b := make([]byte, 20+len(payload))
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint32(b[4:], seq)
	binary.BigEndian.PutUint32(b[8:], ack)
	b[12] = 5 << 4
	b[13] = flags
	binary.BigEndian.PutUint16(b[14:], 65535)
	copy(b[20:], payload)
	return b
}

// tcpHdrOpts is tcpHdr with options (padded with NOPs to 4 bytes).
func tcpHdrOpts(sport, dport uint16, seq, ack uint32, flags uint8, opts, payload []byte) []byte {
	pad := (4 - len(opts)%4) % 4
	ol := len(opts) + pad
	b := tcpHdr(sport, dport, seq, ack, flags, make([]byte, ol+len(payload)))
	copy(b[20:], opts)
	for i := range pad {
		b[20+len(opts)+i] = 1
	}
	copy(b[20+ol:], payload)
	b[12] = byte((20+ol)/4) << 4
	return b
}

func udpHdr(sport, dport uint16, payload []byte) []byte {
	b := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint16(b[4:], uint16(len(b)))
	copy(b[8:], payload)
	return b
}

func echoHdr(v6 bool, id, seq uint16, payload []byte) []byte {
	b := make([]byte, 8+len(payload))
	b[0] = 8
	if v6 {
		b[0] = 128
	}
	binary.BigEndian.PutUint16(b[4:], id)
	binary.BigEndian.PutUint16(b[6:], seq)
	copy(b[8:], payload)
	return b
}

// ipPkt wraps l4 in an IP header from src to dst and fills the transport
// checksum; ProtoICMP becomes ProtoICMPv6 between IPv6 addresses.
func ipPkt(src, dst netip.Addr, proto uint8, l4 []byte) []byte {
	family, ipLen := uint8(4), 20
	if src.Is6() {
		family, ipLen = 6, 40
	}
	if proto == ProtoICMP && family == 6 {
		proto = ProtoICMPv6
	}
	out := make([]byte, ipLen+len(l4))
	oldPutIPHeader(out, family, src.AsSlice(), dst.AsSlice(), proto, len(out))
	copy(out[ipLen:], l4)
	off := map[uint8]int{ProtoTCP: 16, ProtoUDP: 6, ProtoICMP: 2, ProtoICMPv6: 2}[proto]
	oldSetTransportChecksum(out, family, ipLen, off, proto)
	return out
}

func synPkt(src, dst netip.Addr, sport, dport uint16) []byte {
	return ipPkt(src, dst, ProtoTCP, tcpHdr(sport, dport, 1000, 0, TCPSyn, nil))
}

// v6ExtChain is a UDP packet behind n destination options headers.
func v6ExtChain(n int) []byte {
	udp := udpHdr(1, 53, []byte("q"))
	ext := make([]byte, 0, n*8+len(udp))
	for i := range n {
		next := byte(ip6DestOpts)
		if i == n-1 {
			next = ProtoUDP
		}
		ext = append(ext, next, 0, 1, 4, 0, 0, 0, 0) // PadN option
	}
	ext = append(ext, udp...)
	b := make([]byte, 40+len(ext))
	oldPutIPHeader(b, 6, cli6.AsSlice(), srv6.AsSlice(), ip6DestOpts, len(b))
	copy(b[40:], ext)
	oldSetTransportChecksum(b, 6, 40+n*8, 6, ProtoUDP)
	return b
}

// v4Options is pkt (IPv4) with a 4-byte IP option (NOP, NOP, NOP, EOL)
// inserted, header checksum fixed.
func v4Options(pkt []byte) []byte {
	b := make([]byte, 0, len(pkt)+4)
	b = append(b, pkt[:20]...)
	b = append(b, 1, 1, 1, 0)
	b = append(b, pkt[20:]...)
	ip := header.IPv4(b)
	ip.SetHeaderLength(24)
	ip.SetTotalLength(uint16(len(b)))
	fixIPv4(b)
	return b
}

// cut is a copy of the IP packet b cut to n bytes, its IP length fixed
// to match.
func cut(b []byte, n int) []byte {
	c := append([]byte(nil), b[:n]...)
	if header.IPVersion(c) == 4 {
		header.IPv4(c).SetTotalLength(uint16(n))
		fixIPv4(c)
	} else {
		header.IPv6(c).SetPayloadLength(uint16(n - header.IPv6MinimumSize))
	}
	return c
}

// mod returns a copy of b changed by f.
func mod(b []byte, f func([]byte)) []byte { c := append([]byte(nil), b...); f(c); return c }

// fixIPv4 recomputes the IPv4 header checksum of b.
func fixIPv4(b []byte) {
	ip := header.IPv4(b)
	ip.SetChecksum(0)
	ip.SetChecksum(^ip.CalculateChecksum())
}

// onesSum is the RFC 1071 one's complement sum of the concatenated parts,
// written plainly so it checks gVisor's optimized checksum (and ours)
// rather than repeating it.
func onesSum(parts ...[]byte) uint16 {
	var sum uint32
	var odd bool
	var hi byte
	for _, p := range parts {
		for _, c := range p {
			if odd {
				sum += uint32(hi)<<8 | uint32(c)
			} else {
				hi = c
			}
			odd = !odd
		}
	}
	if odd {
		sum += uint32(hi) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return uint16(sum)
}

// checkChecksums verifies the IPv4 header checksum and the transport
// checksum of the IP packet b independently of the package's own sums.
func checkChecksums(t *testing.T, b []byte) {
	t.Helper()
	var src, dst, seg []byte
	var proto uint8
	if header.IPVersion(b) == 4 {
		ip := header.IPv4(b)
		if !ip.IsValid(len(b)) || int(ip.TotalLength()) != len(b) {
			t.Fatalf("invalid IPv4 header: % x", b[:20])
		}
		if got := onesSum(b[:ip.HeaderLength()]); got != 0xffff {
			t.Errorf("IPv4 header sum = %#x, want 0xffff", got)
		}
		src, dst, seg, proto = ip.SourceAddressSlice(), ip.DestinationAddressSlice(), ip.Payload(), ip.Protocol()
	} else {
		ip := header.IPv6(b)
		if !ip.IsValid(len(b)) || int(ip.PayloadLength())+40 != len(b) {
			t.Fatalf("invalid IPv6 header: % x", b[:40])
		}
		src, dst, seg, proto = ip.SourceAddressSlice(), ip.DestinationAddressSlice(), ip.Payload(), ip.NextHeader()
	}
	var got uint16
	if proto == ProtoICMP {
		got = onesSum(seg)
	} else {
		// The pseudo-header's length and protocol words; their order and
		// width (RFC 9293 §3.1 vs RFC 8200 §8.1) do not change the sum.
		pseudo := make([]byte, 4)
		binary.BigEndian.PutUint16(pseudo, uint16(len(seg)))
		pseudo[3] = proto
		got = onesSum(src, dst, pseudo, seg)
	}
	if got != 0xffff {
		t.Errorf("protocol %d sum = %#x, want 0xffff", proto, got)
	}
}
