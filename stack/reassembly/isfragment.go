package reassembly

import "encoding/binary"

// IsFragment reports whether the IP packet b is a fragment: IPv4 with More
// Fragments set or a non-zero offset, or IPv6 with a Fragment header in a
// chain of at most maxExtHeaders headers (atomic fragments included). It
// is the cheap test the data plane runs on every packet before Add, so it
// allocates nothing; a packet too short to tell is not a fragment, and the
// parser drops it for what it is.
func IsFragment(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	switch b[0] >> 4 {
	case 4:
		// 0x3fff: More Fragments and the 13-bit offset, not DF.
		return len(b) >= ipv4HdrMin && binary.BigEndian.Uint16(b[6:])&0x3fff != 0
	case 6:
		if len(b) < ipv6HdrLen {
			return false
		}
		end := ipv6HdrLen + int(binary.BigEndian.Uint16(b[4:]))
		if end == ipv6HdrLen || end > len(b) {
			return false
		}
		_, _, _, ok := findFragmentHeader(b[:end], false)
		return ok
	}
	return false
}
