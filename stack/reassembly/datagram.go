package reassembly

import (
	"bytes"
	"cmp"
	"slices"
)

// maxFragments bounds the fragments one datagram holds. 256 lets a
// 65,535-byte datagram through in fragments of 256 bytes of data (a path
// MTU near 300), and even IPv4's least MTU, 68, carry 12KiB datagrams;
// a flood of 8-byte fragments hits it long before its datagram could be
// complete, and with it every insertion stays a binary search plus a
// short copy.
const maxFragments = 256

// span is one held fragment: its extent in the fragmentable part and
// where its bytes are in the datagram's data.
type span struct{ off, n, pos int32 }

// datagram is one datagram being reassembled, or a tombstone: a datagram
// discarded whole (overlap, inconsistent, too_big, too_many_fragments)
// that is remembered, without its data, until its timeout. Linux unhashes
// such a queue at once (inet_frag_kill), so a later fragment starts a new
// one; the tombstone drops it instead, because the datagram can no longer
// complete from what was discarded, and a sender must not get to replace
// the half that was refused with a different one under the same key.
// Identifications are reused, so a later datagram under the same key
// waits out the timeout, which any incomplete datagram under that key
// would have made it do as well.
type datagram struct {
	key      key
	seq      uint64 // creation order across the Reassembler, for oldest-first eviction
	deadline int64  // clock value from which it has timed out: arrival of its first fragment plus the timeout, never extended
	prev     *datagram
	next     *datagram // the shard's list, oldest first
	frags    []span    // held fragments, sorted by offset and disjoint
	data     []byte    // the first fragment's header and each held fragment's bytes, in arrival order
	hdrPos   int32     // the first fragment's header in data; hdrLen 0 until it is held
	hdrLen   int32
	nhPos    int32  // IPv6: the Next Header byte in the header to rewrite
	nextHdr  uint8  // IPv6: what it becomes, from the first fragment (RFC 8200 §4.5)
	ecn      uint8  // bit 1<<codepoint for every ECN codepoint seen
	end      int32  // length of the fragmentable part once the last fragment is held; -1 before
	maxEnd   int32  // how far the held fragments reach
	have     int32  // bytes held, all fragments together
	dead     Reason // not ReasonNone: a tombstone, discarded for this reason
	listed   bool   // in its shard's map and list
	cost     int64  // bytes charged to the budget: see datagramOverhead
}

func newDatagram(k key) *datagram { return &datagram{key: k, end: -1} }

// ECN codepoint bits in datagram.ecn (RFC 3168 §5).
const (
	ecnNotECT = 1 << 0
	ecnCE     = 1 << 3
)

// place decides whether f may join d and where its span goes. A reason
// that discards the datagram (Reason.DiscardsDatagram) is for the caller
// to act on; ReasonDuplicate leaves d as it was.
func (d *datagram) place(f *fragment) (int, Reason) {
	fe := f.end()
	if !f.more {
		// Two last fragments with different ends, or one ending short
		// of data already held.
		if d.end >= 0 && fe != int(d.end) || fe < int(d.maxEnd) {
			return 0, ReasonInconsistent
		}
	} else if d.end >= 0 && fe > int(d.end) {
		return 0, ReasonInconsistent
	}
	i, found := slices.BinarySearchFunc(d.frags, int32(f.off), func(s span, off int32) int { return cmp.Compare(s.off, off) })
	if found {
		s := d.frags[i]
		if int(s.n) != len(f.payload) || !bytes.Equal(d.data[s.pos:s.pos+s.n], f.payload) {
			return 0, ReasonOverlap
		}
		// Only one held span can end at a known end: the last fragment.
		if heldLast := d.end >= 0 && s.off+s.n == d.end; heldLast == f.more {
			return 0, ReasonInconsistent
		}
		return 0, ReasonDuplicate
	}
	// The held spans are disjoint and sorted, so only the neighbours can
	// overlap the new one.
	if i > 0 && int(d.frags[i-1].off+d.frags[i-1].n) > f.off || i < len(d.frags) && int(d.frags[i].off) < fe {
		return 0, ReasonOverlap
	}
	// Linux's ip_frag_ecn_table: Not-ECT mixed with any ECN-capable
	// codepoint cannot be one datagram.
	if m := d.ecn | 1<<f.ecn; m&ecnNotECT != 0 && m != ecnNotECT {
		return 0, ReasonInconsistent
	}
	hdr := int(d.hdrLen)
	if f.off == 0 {
		hdr = len(f.hdr)
	}
	if hdr > 0 && hdr+max(int(d.maxEnd), fe) > maxLength(d.key.v6) {
		return 0, ReasonTooBig
	}
	return i, ReasonNone
}

// maxLength is the longest reassembled packet: 65,535 bytes in all for
// IPv4, 65,535 after the fixed header for IPv6.
func maxLength(v6 bool) int {
	if v6 {
		return MaxDatagram
	}
	return maxIPPayload
}

// completes reports whether f, which place accepted, is the piece d
// lacks. The spans are disjoint and within the end, so when their bytes
// add up to it they cover it.
func (d *datagram) completes(f *fragment) bool {
	end := int(d.end)
	if !f.more {
		end = f.end()
	}
	return end >= 0 && int(d.have)+len(f.payload) == end
}

// stored is how many bytes of d's data holding f takes.
func (f *fragment) stored() int {
	if f.off == 0 {
		return len(f.hdr) + len(f.payload)
	}
	return len(f.payload)
}

// insert copies f into d at span index i. The caller has made room in
// data (makeRoom), so the appends do not reallocate it.
func (d *datagram) insert(i int, f *fragment) {
	if f.off == 0 {
		d.hdrPos, d.hdrLen = int32(len(d.data)), int32(len(f.hdr))
		d.nhPos, d.nextHdr = int32(f.nhPos), f.next
		d.data = append(d.data, f.hdr...)
	}
	d.frags = slices.Insert(d.frags, i, span{off: int32(f.off), n: int32(len(f.payload)), pos: int32(len(d.data))})
	d.data = append(d.data, f.payload...)
	d.have += int32(len(f.payload))
	d.maxEnd = max(d.maxEnd, int32(f.end()))
	if !f.more {
		d.end = int32(f.end())
	}
	d.ecn |= 1 << f.ecn
}
