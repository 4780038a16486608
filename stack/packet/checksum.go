package packet

import (
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// transportSum is the one's complement sum a transport checksum covers:
// the pseudo-header and seg (TCP RFC 9293 §3.1, UDP RFC 768, ICMPv6
// RFC 4443 §2.3), or seg alone for ICMPv4, which has no pseudo-header
// (RFC 792). Over a segment whose checksum field is zero, its complement
// is the checksum to write.
func transportSum(proto uint8, src, dst tcpip.Address, seg []byte) uint16 {
	var sum uint16
	if proto != ProtoICMP {
		sum = header.PseudoHeaderChecksum(tcpip.TransportProtocolNumber(proto), src, dst, uint16(len(seg)))
	}
	return checksum.Checksum(seg, sum)
}

// checksumValid reports whether the transport checksum of seg, the
// segment of the packet p describes, is right: the sum over the segment
// with its checksum in place is 0xffff. It is transportSum reading the
// addresses in place from the key, because header.PseudoHeaderChecksum,
// which wants gVisor addresses built first, made parsing a full-size TCP
// segment a third slower.
func checksumValid(p *Parsed, seg []byte) bool {
	k := &p.CT.Key
	var sum uint16
	if k.Proto != ProtoICMP {
		n := header.IPv4AddressSize
		if p.Family == 6 {
			n = header.IPv6AddressSize
		}
		sum = checksum.Checksum(k.Src[:n], 0)
		sum = checksum.Checksum(k.Dst[:n], sum)
		sum = checksum.Combine(sum, uint16(k.Proto))
		sum = checksum.Combine(sum, uint16(len(seg)))
	}
	return checksum.Checksum(seg, sum) == 0xffff
}
