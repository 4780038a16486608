package packettest

import (
	"encoding/binary"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// Fragments splits the unfragmented IP packet pkt (no IPv6 extension
// headers) into fragments carrying at most size bytes of its payload each
// (rounded down to a multiple of 8), as a sender would, with
// identification id.
func Fragments(pkt []byte, size int, id uint32) [][]byte {
	size &^= 7
	var hdr, payload []byte
	v6 := header.IPVersion(pkt) == header.IPv6Version
	if v6 {
		hdr, payload = pkt[:header.IPv6MinimumSize], pkt[header.IPv6MinimumSize:]
	} else {
		ihl := int(header.IPv4(pkt).HeaderLength())
		hdr, payload = pkt[:ihl], pkt[ihl:header.IPv4(pkt).TotalLength()]
	}
	var out [][]byte
	for off := 0; off < len(payload); off += size {
		end := min(off+size, len(payload))
		more := end < len(payload)
		if v6 {
			f := make([]byte, len(hdr)+header.IPv6FragmentHeaderSize+end-off)
			copy(f, hdr)
			next := f[6]
			f[6] = uint8(header.IPv6FragmentHeader)
			fh := f[header.IPv6MinimumSize:]
			fh[0] = next
			fo := uint16(off)
			if more {
				fo |= 1
			}
			binary.BigEndian.PutUint16(fh[2:], fo)
			binary.BigEndian.PutUint32(fh[4:], id)
			copy(fh[header.IPv6FragmentHeaderSize:], payload[off:end])
			binary.BigEndian.PutUint16(f[4:], uint16(len(f)-header.IPv6MinimumSize))
			out = append(out, f)
			continue
		}
		f := make([]byte, len(hdr)+end-off)
		copy(f, hdr)
		copy(f[len(hdr):], payload[off:end])
		ip := header.IPv4(f)
		ip.SetTotalLength(uint16(len(f)))
		ip.SetID(uint16(id))
		flags := uint8(0)
		if more {
			flags = header.IPv4FlagMoreFragments
		}
		ip.SetFlagsFragmentOffset(flags, uint16(off))
		ip.SetChecksum(0)
		ip.SetChecksum(^ip.CalculateChecksum())
		out = append(out, f)
	}
	return out
}
