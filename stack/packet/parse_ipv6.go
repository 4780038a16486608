package packet

import "gvisor.dev/gvisor/pkg/tcpip/header"

// IPv6 extension headers the parser walks (RFC 8200 §4). Anything else
// that is not a transport the stack terminates ends the walk with a drop.
const (
	ip6HopByHop = 0
	ip6Routing  = 43
	ip6Fragment = 44
	ip6DestOpts = 60
)

// maxExtHeaders bounds the IPv6 extension header walk so a crafted chain
// cannot make the parser loop; RFC 8200 recommends each at most once (two
// for destination options), so eight is generous.
const maxExtHeaders = 8

func parseIPv6(b []byte, p *Parsed) DropReason {
	if len(b) < header.IPv6MinimumSize {
		return ReasonShort
	}
	ip := header.IPv6(b)
	plen := int(ip.PayloadLength())
	// A zero payload length means a jumbogram (RFC 2675) unless the packet
	// really is header-only; neither fits a TUN MTU, so both are malformed.
	if plen == 0 || header.IPv6MinimumSize+plen > len(b) {
		return ReasonIPHeader
	}
	end := header.IPv6MinimumSize + plen
	proto, off, r := walkIPv6(b[:end])
	if r != ReasonNone {
		return r
	}
	p.Family = 6
	p.End = end
	p.L4 = off
	p.CT.Key.Family = 6
	p.CT.Key.Proto = proto
	copy(p.CT.Key.Src[:], ip.SourceAddressSlice())
	copy(p.CT.Key.Dst[:], ip.DestinationAddressSlice())
	return ReasonNone
}

// walkIPv6 follows the extension header chain of the IPv6 packet b (at
// least the fixed header) to the transport header and returns its protocol
// and offset.
func walkIPv6(b []byte) (proto uint8, off int, r DropReason) {
	next := header.IPv6(b).NextHeader()
	off = header.IPv6MinimumSize
	for i := 0; ; i++ {
		switch next {
		case ProtoTCP, ProtoUDP, ProtoICMPv6:
			return next, off, ReasonNone
		case ip6HopByHop, ip6Routing, ip6DestOpts:
			// These three share one layout: next header, then the
			// length in 8-octet units not counting the first 8.
			// Hop-by-hop options come first or not at all (RFC 8200
			// §4.1): elsewhere they hide options from routers.
			if i >= maxExtHeaders || off+8 > len(b) || (next == ip6HopByHop && i > 0) {
				return 0, 0, ReasonExtHeader
			}
			n := (int(b[off+1]) + 1) * 8
			if off+n > len(b) {
				return 0, 0, ReasonExtHeader
			}
			// A type 0 routing header that still has segments to visit
			// makes the packet bounce between hosts (RFC 5095 deprecates
			// it: a node must not process it).
			if next == ip6Routing && b[off+2] == 0 && b[off+3] > 0 {
				return 0, 0, ReasonRoutingHeader
			}
			next = b[off]
			off += n
		case ip6Fragment:
			return 0, 0, ReasonFragment
		default:
			return 0, 0, ReasonProto
		}
	}
}
