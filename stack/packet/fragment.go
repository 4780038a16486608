package packet

import (
	"encoding/binary"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// OutboundFragment describes a fragment gVisor emitted (ParseOutbound
// refused it with ReasonFragment): gVisor fragments a datagram larger than
// the link MTU itself, as the sender must for IPv6, and those fragments go
// to the TUN as they are. It fills p's key (addresses and protocol, and
// for the first fragment of a UDP datagram or an ICMP echo reply the
// ports or identifier and type, read from the transport header it
// carries) and reports whether p can be tracked: only a first fragment
// says which flow the datagram belongs to. Len is the fragment's length.
// b must be an IP packet ParseOutbound refused as a fragment.
func OutboundFragment(b []byte, p *Parsed) (first bool) {
	*p = Parsed{Trusted: true}
	var off, l4 int
	var proto uint8
	switch {
	case len(b) >= header.IPv4MinimumSize && header.IPVersion(b) == header.IPv4Version:
		ip := header.IPv4(b)
		p.Family, p.End = 4, int(ip.TotalLength())
		proto, off, l4 = ip.Protocol(), int(ip.FragmentOffset()), int(ip.HeaderLength())
		copy(p.CT.Key.Src[:4], ip.SourceAddressSlice())
		copy(p.CT.Key.Dst[:4], ip.DestinationAddressSlice())
	case len(b) >= header.IPv6MinimumSize && header.IPVersion(b) == header.IPv6Version:
		ip := header.IPv6(b)
		p.Family, p.End = 6, header.IPv6MinimumSize+int(ip.PayloadLength())
		copy(p.CT.Key.Src[:], ip.SourceAddressSlice())
		copy(p.CT.Key.Dst[:], ip.DestinationAddressSlice())
		var ok bool
		if proto, off, l4, ok = ipv6Fragment(b); !ok {
			return false
		}
	default:
		return false
	}
	p.CT.Key.Family, p.CT.Key.Proto, p.CT.Len = p.Family, proto, p.End
	if off != 0 || l4 < header.IPv4MinimumSize || l4+8 > min(p.End, len(b)) {
		return false
	}
	p.L4 = l4
	t := b[l4:]
	switch {
	case proto == ProtoUDP:
		p.CT.Key.SrcPort, p.CT.Key.DstPort = binary.BigEndian.Uint16(t), binary.BigEndian.Uint16(t[2:])
	case (proto == ProtoICMP && t[0] == uint8(header.ICMPv4EchoReply)) ||
		(proto == ProtoICMPv6 && t[0] == uint8(header.ICMPv6EchoReply)):
		p.CT.ICMPType, p.CT.ICMPCode = t[0], t[1]
		p.CT.Key.SrcPort = binary.BigEndian.Uint16(t[4:]) // the echo identifier
	default:
		return false
	}
	return true
}

// ipv6Fragment finds the Fragment header of the IPv6 packet b and returns
// the protocol of the fragmented part, the fragment offset in bytes and
// where that part starts.
func ipv6Fragment(b []byte) (proto uint8, off, at int, ok bool) {
	next := header.IPv6(b).NextHeader()
	at = header.IPv6MinimumSize
	for range maxExtHeaders {
		if at+8 > len(b) {
			return 0, 0, 0, false
		}
		switch next {
		case ip6HopByHop, ip6Routing, ip6DestOpts:
			next = b[at]
			at += (int(b[at+1]) + 1) * 8
		case ip6Fragment:
			return b[at], int(binary.BigEndian.Uint16(b[at+2:]) &^ 7), at + 8, true
		default:
			return 0, 0, 0, false
		}
	}
	return 0, 0, 0, false
}
