package reassembly

import (
	"encoding/binary"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// assemble writes d completed by f, which is not held, into out as one
// unfragmented packet and returns its length.
func (d *datagram) assemble(out []byte, f *fragment) int {
	hdr, nhPos, next := f.hdr, f.nhPos, f.next
	if f.off != 0 {
		hdr = d.data[d.hdrPos : d.hdrPos+d.hdrLen]
		nhPos, next = int(d.nhPos), d.nextHdr
	}
	hl := copy(out, hdr)
	for _, s := range d.frags {
		copy(out[hl+int(s.off):], d.data[s.pos:s.pos+s.n])
	}
	copy(out[hl+f.off:], f.payload)
	end := int(d.end)
	if !f.more {
		end = f.end()
	}
	p := out[:hl+end]
	ecn := d.ecn | 1<<f.ecn
	if d.key.v6 {
		finishIPv6(p, nhPos, next, ecn)
	} else {
		finishIPv4(p, ecn)
	}
	return len(p)
}

// finishIPv4 turns the first fragment's header at the start of p into the
// datagram's: its length, no More Fragments, offset 0, and a new header
// checksum. DF and the reserved bit stay as the first fragment had them;
// options are kept whole, copied or not (RFC 791 §3.2), since the first
// fragment carried them all.
func finishIPv4(p []byte, ecn uint8) {
	ip := header.IPv4(p)
	ip.SetTotalLength(uint16(len(p)))
	binary.BigEndian.PutUint16(p[6:], binary.BigEndian.Uint16(p[6:])&^(ipv4MoreFragments|ipv4OffsetMask))
	if ecn&ecnCE != 0 {
		p[1] |= 3 // RFC 3168 §5.3: congestion seen by any fragment is seen by the datagram
	}
	ip.SetChecksum(0)
	ip.SetChecksum(^ip.CalculateChecksum())
}

// finishIPv6 turns the first fragment's unfragmentable part at the start
// of p into the datagram's header: the Fragment header gone, the Next
// Header that named it now naming what followed it, the payload length
// set.
func finishIPv6(p []byte, nhPos int, next, ecn uint8) {
	p[nhPos] = next
	binary.BigEndian.PutUint16(p[4:], uint16(len(p)-ipv6HdrLen))
	if ecn&ecnCE != 0 {
		p[1] |= 3 << 4 // the traffic class's low bits start at bit 4 of byte 1
	}
}

// writeAtomic writes the atomic fragment f (RFC 6946) into out without
// its Fragment header and returns its length.
func writeAtomic(out []byte, f *fragment) int {
	n := copy(out, f.hdr)
	n += copy(out[n:], f.payload)
	finishIPv6(out[:n], f.nhPos, f.next, 1<<f.ecn)
	return n
}
