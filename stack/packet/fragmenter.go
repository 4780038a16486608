package packet

import (
	"encoding/binary"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// Fragment cuts the unfragmented IP packet pkt (IPv6: with no extension
// headers, as the gateway's own replies are) into fragments of at most
// mtu bytes, each written into scratch (at least mtu bytes) and handed to
// emit before the next is built, with identification id. It is for the
// replies the gateway itself originates (echo replies to a large ping):
// as their source it must fragment them, since the kernel forwards IPv6
// without fragmenting and drops IPv4 with DF set. It returns false, and
// emits nothing, when pkt cannot be fragmented: IPv4 with DF set, or an
// mtu too small to carry 8 bytes of payload.
func Fragment(pkt []byte, mtu int, id uint32, scratch []byte, emit func([]byte)) bool {
	scratch = scratch[:min(mtu, len(scratch))]
	if header.IPVersion(pkt) == header.IPv4Version {
		ip := header.IPv4(pkt)
		hl := int(ip.HeaderLength())
		if ip.Flags()&header.IPv4FlagDontFragment != 0 {
			return false
		}
		return splitPayload(pkt[hl:ip.TotalLength()], len(scratch)-hl, func(off, end int, more bool) {
			f := scratch[:hl+end-off]
			copy(f, pkt[:hl])
			copy(f[hl:], pkt[hl+off:hl+end])
			h := header.IPv4(f)
			h.SetTotalLength(uint16(len(f)))
			h.SetID(uint16(id))
			flags := uint8(0)
			if more {
				flags = header.IPv4FlagMoreFragments
			}
			h.SetFlagsFragmentOffset(flags, uint16(off))
			h.SetChecksum(0)
			h.SetChecksum(^h.CalculateChecksum())
			emit(f)
		})
	}
	const fh = header.IPv6FragmentHeaderSize
	hl := header.IPv6MinimumSize
	payload := pkt[hl : hl+int(header.IPv6(pkt).PayloadLength())]
	next := pkt[6]
	return splitPayload(payload, len(scratch)-hl-fh, func(off, end int, more bool) {
		f := scratch[:hl+fh+end-off]
		copy(f, pkt[:hl])
		f[6] = uint8(header.IPv6FragmentHeader)
		binary.BigEndian.PutUint16(f[4:], uint16(fh+end-off))
		h := f[hl : hl+fh]
		h[0], h[1] = next, 0
		fo := uint16(off)
		if more {
			fo |= 1
		}
		binary.BigEndian.PutUint16(h[2:], fo)
		binary.BigEndian.PutUint32(h[4:], id)
		copy(f[hl+fh:], payload[off:end])
		emit(f)
	})
}

// splitPayload calls frag for each piece of payload of at most room bytes
// (a multiple of 8 for all but the last).
func splitPayload(payload []byte, room int, frag func(off, end int, more bool)) bool {
	room &^= 7
	if room < 8 {
		return false
	}
	for off := 0; off < len(payload); off += room {
		end := min(off+room, len(payload))
		frag(off, end, end < len(payload))
	}
	return true
}
