package reassembly

import (
	"encoding/binary"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// parseIPv6 takes b as an IPv6 packet with a Fragment header.
func parseIPv6(b []byte, f *fragment) Reason {
	if len(b) < ipv6HdrLen {
		return ReasonMalformed
	}
	plen := int(binary.BigEndian.Uint16(b[4:]))
	// A zero payload length announces a jumbogram (RFC 2675), which is
	// never fragmented (RFC 2675 §3).
	if plen == 0 || ipv6HdrLen+plen > len(b) {
		return ReasonMalformed
	}
	b = b[:ipv6HdrLen+plen]
	off, nh, n, ok := findFragmentHeader(b, true)
	if !ok {
		return ReasonMalformed
	}
	fh := header.IPv6FragmentExtHdr(b[off+2 : off+fragHdrLen])
	ip := header.IPv6(b)
	*f = fragment{
		off:     int(fh.FragmentOffset()) * header.IPv6FragmentExtHdrFragmentOffsetBytesPerUnit,
		more:    fh.More(),
		payload: b[off+fragHdrLen:],
		hdr:     b[:off],
		nhPos:   nh,
		next:    b[off],
		ecn:     (b[1] >> 4) & 3,
		atomic:  fh.IsAtomic(),
	}
	f.key.v6 = true
	f.key.id = fh.ID()
	copy(f.key.src[:], ip.SourceAddressSlice())
	copy(f.key.dst[:], ip.DestinationAddressSlice())
	if f.atomic {
		// The whole chain is here: one that runs past the packet is
		// malformed, not tiny. The upper-layer header is the parser's.
		_, _, whole, r := chainAfter(f.payload, f.next, n)
		if r == ReasonNone && !whole {
			r = ReasonMalformed
		}
		return r
	}
	if r := checkLength(f); r != ReasonNone {
		return r
	}
	// RFC 8200 §4.5: offset plus fragment length past 65,535 is refused
	// by the fragment alone; the unfragmentable part is added once the
	// first fragment is known.
	if f.end() > maxIPPayload {
		return ReasonTooBig
	}
	if f.off == 0 {
		// RFC 7112: the first fragment holds the whole header chain and
		// the upper-layer header, so no filter has to guess at them.
		upperOff, upper, whole, r := chainAfter(f.payload, f.next, n)
		if r != ReasonNone {
			return r
		}
		if !whole || upperOff+minUpperHeader(upper, true) > len(f.payload) {
			return ReasonTinyFirst
		}
	}
	return ReasonNone
}

// chainAfter walks the headers after the Fragment header, in p, the data
// of a first (or atomic) fragment, from next to the upper-layer header; n
// headers are already counted. It returns where the upper-layer header
// starts and which it is; whole is false when the chain runs past p. It
// refuses what must not follow a Fragment header: a Hop-by-Hop header
// (RFC 8200 §4.3) or a second Fragment header, which would make the
// reassembled datagram a fragment again.
func chainAfter(p []byte, next uint8, n int) (off int, upper uint8, whole bool, r Reason) {
	for {
		switch next {
		case extHopByHop, extFragment:
			return 0, 0, false, ReasonMalformed
		case extRouting, extDestOpts, extAuth:
			if n++; n > maxExtHeaders {
				return 0, 0, false, ReasonMalformed
			}
			l := extLen(p, off, next)
			if l == 0 {
				return 0, 0, false, ReasonNone
			}
			next, off = p[off], off+l
		default:
			return off, next, true, ReasonNone
		}
	}
}
