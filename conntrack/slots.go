package conntrack

import (
	"encoding/binary"
	"math"
	"math/bits"
	"unsafe"
)

// A shard stores its entries in the hash table itself: slot s of the
// entries array is also position s of an open-addressing table with linear
// probing, and a dense byte per slot (ctrl) says whether the slot is empty
// or full and, when full, holds 7 bits of the flow's hash.
//
// Why entries in the table rather than an index pointing into an arena: a
// cold lookup in a million flows then costs one cache miss, not two. The
// control bytes are ~1.3 bytes per flow, small enough to stay in the
// last-level cache where an index of slot numbers (8-16 bytes per flow)
// did not, so probing reads cached bytes and only a tag match touches an
// entry (BenchmarkLookupCold1M: the README has the figures before and
// after).
//
// Entries therefore move: deletion shifts the rest of the run back into
// the hole (no tombstones, so churn never degrades probing and never
// forces a rebuild), and growth re-places every flow. Nothing outside the
// shard lock holds a slot number, and the unassured lists link nodes that
// record their flow's slot (lists.go), so a move updates one node. The
// table grows by a quarter when 7/8 full: it stays between 70% and 87.5%
// full.

// ctrl byte values.
const (
	ctrlEmpty uint8 = 0
	ctrlFull  uint8 = 0x80 // | 7 bits of the flow hash
)

// Load limits: grow when a flow would make the table more than
// maxLoad8/8 full, to targetLoad.
const (
	maxLoad8   = 7
	targetLoad = 0.7
	minSlots   = 15 // a fresh shard's first table: 16 entries with the sentinel
)

// ctrlTag is the control byte of a flow with hash h: bits 32-38 (the slot
// comes from bits 0-31, the shard from bits 58-63).
func ctrlTag(h uint64) uint8 { return ctrlFull | uint8(h>>32)&0x7f }

// home is the first slot of the probe run of a flow whose hash has low
// bits h32, in a table of n slots (1..n; slot 0 is a sentinel): the
// multiply-shift map of h32 onto n, so n need not be a power of two and
// growth can be gradual.
func home(h32, n uint32) uint32 { return 1 + uint32(uint64(h32)*uint64(n)>>32) }

// onPath reports whether a probe run that starts at from and reaches to
// passes slot, cyclically.
func onPath(from, slot, to uint32) bool {
	if from <= to {
		return from <= slot && slot <= to
	}
	return slot >= from || slot <= to
}

func (s *shard) at(slot uint32) *entry { return &s.entries[slot] }

// nextSlot is the slot after slot in probe order.
func (s *shard) nextSlot(slot uint32) uint32 {
	if slot == s.nslots {
		return 1
	}
	return slot + 1
}

// setDeadline sets e's deadline, keeping its chunk's lower bound.
func (s *shard) setDeadline(slot uint32, e *entry, d int64) {
	e.deadline = d
	if m := &s.minDeadline[slot>>chunkBits]; d < *m {
		*m = d
	}
}

// Probing reads the control bytes eight at a time (one little-endian
// word, bytes in slot order) and tests them together: a run of a loaded
// table is often a dozen slots, and a branch per byte cost more than the
// rest of a miss. ctrl carries a copy of slots 1..group after slot nslots
// so a word never wraps.
const (
	group  = 8
	lsbs   = 0x0101010101010101
	msbs   = 0x8080808080808080
	noByte = group
)

// zeroBytes has the high bit set in each zero byte of w up to and
// including the first; bytes above the first zero may be flagged falsely,
// so callers take the lowest flag or verify.
func zeroBytes(w uint64) uint64 { return (w - lsbs) &^ w & msbs }

// firstByte is the index of the lowest flagged byte of m, or noByte.
func firstByte(m uint64) int { return bits.TrailingZeros64(m) >> 3 }

func (s *shard) ctrlWord(slot uint32) uint64 {
	return binary.LittleEndian.Uint64(s.ctrl[slot : slot+group])
}

// setCtrl writes slot's control byte and its copy past the end.
func (s *shard) setCtrl(slot uint32, c uint8) {
	s.ctrl[slot] = c
	if slot <= group {
		s.ctrl[s.nslots+slot] = c
	}
}

// wrap maps a slot number up to nslots+group back into 1..nslots.
func (s *shard) wrap(slot uint32) uint32 {
	if slot > s.nslots {
		return slot - s.nslots
	}
	return slot
}

// find locates k with flow hash h under s.mu: the slot of its flow and the
// direction k travels in it. A probe run always ends at an empty slot:
// the table is never more than 7/8 full.
func (s *shard) find(k *Key, h uint64) (uint32, Dir, bool) {
	if s.nslots == 0 {
		return 0, 0, false
	}
	tagWord := uint64(ctrlTag(h)) * lsbs
	start := home(uint32(h), s.nslots)
	// Start loading the home slot's entry before reading its control
	// bytes: most flows sit at their home (the rest mostly in the same
	// page), so by the time the tag has picked the slot, its entry is on
	// the way. A prefetch rather than a load, so a miss (a new flow) never
	// waits for a line it will not read.
	prefetch(unsafe.Pointer(&s.entries[start]))
	for pos := start; ; pos = s.wrap(pos + group) {
		w := s.ctrlWord(pos)
		end := firstByte(zeroBytes(w)) // the run's end, if in this word
		for m := zeroBytes(w ^ tagWord); m != 0; m &= m - 1 {
			i := firstByte(m)
			if i >= end {
				break
			}
			slot := s.wrap(pos + uint32(i))
			e := s.at(slot)
			if keyEq(&e.key, k) {
				return slot, DirOriginal, true
			}
			if isReplyOf(k, &e.key) {
				return slot, DirReply, true
			}
		}
		if end != noByte {
			return 0, 0, false
		}
	}
}

// place claims the empty slot that ends the probe run of a flow known to
// be absent, with hash low bits h32 and control byte tag.
func (s *shard) place(h32 uint32, tag uint8) uint32 {
	pos := home(h32, s.nslots)
	for {
		if free := zeroBytes(s.ctrlWord(pos)); free != 0 {
			pos = s.wrap(pos + uint32(firstByte(free)))
			break
		}
		pos = s.wrap(pos + group)
	}
	s.setCtrl(pos, tag)
	s.hash32[pos] = h32
	return pos
}

// insert stores e, a flow with hash h that is not in the table. Called
// with s.mu held; may grow the table, so slot numbers taken before it are
// stale after it.
func (s *shard) insert(e *entry, h uint64) uint32 {
	if uint64(s.live+1)*8 > uint64(s.nslots)*maxLoad8 {
		s.rebuild(s.live + 1)
	}
	slot := s.place(uint32(h), ctrlTag(h))
	p := s.at(slot)
	*p = *e
	// Read e, not p: reading back a field of the copy just stored to a
	// cold line waits for that line (the wide stores do not forward to a
	// narrow load), ~90 ns per new flow.
	s.setDeadline(slot, p, e.deadline)
	if l := listOf(e); l >= 0 {
		s.pushBack(l, slot, e.created)
	}
	s.live++
	return slot
}

// vacate empties slot, whose flow is off its list, by backward-shift
// deletion: each later flow of the run whose probe path passes the hole
// moves into it, and the hole moves on, until the run ends. Lookups then
// never need tombstones.
func (s *shard) vacate(hole uint32) {
	for j := s.nextSlot(hole); s.ctrl[j] != ctrlEmpty; j = s.nextSlot(j) {
		if !onPath(home(s.hash32[j], s.nslots), hole, j) {
			continue
		}
		from, e := s.at(j), s.at(hole)
		*e = *from
		s.setCtrl(hole, s.ctrl[j])
		s.hash32[hole] = s.hash32[j]
		if from.node != 0 {
			s.nodes[from.node].slot = hole
		}
		s.setDeadline(hole, e, from.deadline)
		hole = j
	}
	s.setCtrl(hole, ctrlEmpty)
	s.hash32[hole] = 0
	*s.at(hole) = entry{}
}

// slotsFor is the table size for n flows at targetLoad.
func slotsFor(n int) uint32 {
	return uint32(max(minSlots, int(math.Ceil(float64(n)/targetLoad))))
}

// rebuild re-places every flow in a table sized for n flows (never below
// the preallocated floor). Called with s.mu held. It is O(flows in the shard), and with growth by a quarter at
// a time each flow is moved about four times on the way to any size.
func (s *shard) rebuild(n int) {
	oldEntries, oldCtrl, oldHash, oldN := s.entries, s.ctrl, s.hash32, s.nslots
	s.nslots = max(slotsFor(max(n, s.live)), s.floor)
	s.entries = make([]entry, s.nslots+1)
	s.ctrl = make([]uint8, s.nslots+1+group)
	s.hash32 = make([]uint32, s.nslots+1)
	s.minDeadline = make([]int64, (s.nslots+1+chunkSize-1)/chunkSize)
	for i := range s.minDeadline {
		s.minDeadline[i] = math.MaxInt64
	}
	for old := uint32(1); old <= oldN; old++ {
		if oldCtrl[old] == ctrlEmpty {
			continue
		}
		slot := s.place(oldHash[old], oldCtrl[old])
		from, e := &oldEntries[old], s.at(slot)
		*e = *from
		s.setDeadline(slot, e, from.deadline)
		if from.node != 0 {
			s.nodes[from.node].slot = slot
		}
	}
	s.rebuilds++
}
