package packet

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/tungate/tungate/stack/packet/packettest"

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

// One-line packet builders (packettest), under the names these tests use.
var (
	tcpHdr     = packettest.TCPHdr
	tcpHdrOpts = packettest.TCPHdrOpts
	udpHdr     = packettest.UDPHdr
	echoHdr    = packettest.EchoHdr
	ipPkt      = packettest.IP
	synPkt     = packettest.SYN
)

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
