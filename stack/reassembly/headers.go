package reassembly

import "gvisor.dev/gvisor/pkg/tcpip/header"

// Protocol and IPv6 extension header numbers (IANA, RFC 8200 §4).
const (
	protoICMP    = uint8(header.ICMPv4ProtocolNumber)
	protoTCP     = uint8(header.TCPProtocolNumber)
	protoUDP     = uint8(header.UDPProtocolNumber)
	protoICMPv6  = uint8(header.ICMPv6ProtocolNumber)
	extHopByHop  = uint8(header.IPv6HopByHopOptionsExtHdrIdentifier)
	extRouting   = uint8(header.IPv6RoutingExtHdrIdentifier)
	extFragment  = uint8(header.IPv6FragmentExtHdrIdentifier)
	extDestOpts  = uint8(header.IPv6DestinationOptionsExtHdrIdentifier)
	extAuth      = uint8(header.IPv6AuthenticationExtHdrIdentifier)
	extNoNext    = uint8(header.IPv6NoNextHeaderIdentifier)
	fragHdrLen   = header.IPv6FragmentExtHdrLength
	ipv4HdrMin   = header.IPv4MinimumSize
	ipv6HdrLen   = header.IPv6MinimumSize
	maxIPPayload = 1<<16 - 1 // IPv4 total length, IPv6 payload length
)

// maxExtHeaders bounds every IPv6 header chain walk, the Fragment header
// included, so a crafted chain cannot make one loop. It is the packet
// parser's bound too: a chain too long for IsFragment to find a Fragment
// header in, the parser drops as too long.
const maxExtHeaders = 8

// MaxDatagram is the largest packet Add writes, and so the least room out
// must have: an IPv6 header plus the largest payload length. An IPv4
// datagram is at most 65,535 bytes in all.
const MaxDatagram = ipv6HdrLen + maxIPPayload

// minUpperHeader is how much of the upper-layer header the first fragment
// must hold: the fixed TCP header, or the 8 bytes of a UDP, ICMP or ICMPv6
// header, which carry the ports, types and codes a filter decides on
// (RFC 1858 §3.1, RFC 7112). Linux asks one byte of any other protocol
// (ipv6_frag_rcv); so does this, for IPv6. No Next Header has nothing to
// hold.
func minUpperHeader(proto uint8, v6 bool) int {
	switch proto {
	case protoTCP:
		return header.TCPMinimumSize
	case protoUDP:
		return header.UDPMinimumSize
	case protoICMP, protoICMPv6:
		return header.ICMPv4MinimumSize
	case extNoNext:
		return 0
	}
	if v6 {
		return 1
	}
	return 0
}

// extLen is the length of the extension header at b[off:], for the
// headers that share the layout "next header, length in 8-octet units
// not counting the first 8" (RFC 8200 §4.3, §4.4, §4.6), or AH, whose
// length counts 4-octet units minus 2 (RFC 4302 §2.2). It returns 0 when
// the header does not fit in b.
func extLen(b []byte, off int, ext uint8) int {
	if off+8 > len(b) {
		return 0
	}
	n := (int(b[off+1]) + 1) * 8
	if ext == extAuth {
		n = (int(b[off+1]) + 2) * 4
	}
	if off+n > len(b) {
		return 0
	}
	return n
}

// findFragmentHeader walks the IPv6 packet b (its length already cut to
// the payload length) from the fixed header to its first Fragment header.
// It returns the header's offset, the offset of the Next Header byte that
// names it (6, the fixed header's, or the preceding extension header's
// first byte), and how many headers the walk counted, the Fragment header
// included. ok is false when no Fragment header is found within
// maxExtHeaders headers that fit in b, or, under strict, when a Hop-by-Hop
// header is not the first (RFC 8200 §4.3: it must follow the IPv6 header
// immediately).
func findFragmentHeader(b []byte, strict bool) (off, nh, n int, ok bool) {
	next := b[6]
	off, nh = ipv6HdrLen, 6
	for n = 1; n <= maxExtHeaders; n++ {
		switch next {
		case extFragment:
			return off, nh, n, off+fragHdrLen <= len(b)
		case extHopByHop, extRouting, extDestOpts:
			if strict && next == extHopByHop && off != ipv6HdrLen {
				return 0, 0, 0, false
			}
			l := extLen(b, off, next)
			if l == 0 {
				return 0, 0, 0, false
			}
			next, nh, off = b[off], off, off+l
		default:
			return 0, 0, 0, false
		}
	}
	return 0, 0, 0, false
}
