package reassembly

import "math"

// What a held datagram costs beyond the bytes it holds, charged to
// Config.Memory along with the capacity of its data buffer: the datagram
// record and its map entry, and per fragment its span with the slack of
// the growing slice. TestOverheads keeps them above the real sizes. The
// allocator's rounding of the data buffer to its size class is not
// counted.
const (
	datagramOverhead = 256
	fragOverhead     = 32
)

// makeRoom makes d's data hold need bytes and charges the growth plus
// extra to the budget, evicting the oldest other datagrams if it must. It
// reports false, charging nothing, when that cannot be done.
func (r *Reassembler) makeRoom(s *shard, d *datagram, need int, extra int64) bool {
	have := cap(d.data)
	exact := max(need, have)
	if d.cost+int64(exact-have)+extra > r.budget {
		return false // too big alone: evicting everyone else would not help
	}
	c := exact
	// Doubling spares a datagram of many fragments a copy of its data per
	// fragment, but is taken only when it fits without evicting anyone.
	if roomy := min(2*have, MaxDatagram); need > have && roomy > need &&
		d.cost+int64(roomy-have)+extra <= r.budget && r.tryCharge(int64(roomy-have)+extra) {
		c = roomy
	} else if !r.reserve(s, d, int64(c-have)+extra) {
		return false
	}
	d.cost += int64(c-have) + extra
	if c > have {
		data := make([]byte, len(d.data), c)
		copy(data, d.data)
		d.data = data
	}
	return true
}

// tryCharge adds n to the memory in use if that stays within the budget.
func (r *Reassembler) tryCharge(n int64) bool {
	for {
		cur := r.mem.Load()
		if cur+n > r.budget {
			return false
		}
		if r.mem.CompareAndSwap(cur, cur+n) {
			return true
		}
	}
}

func (r *Reassembler) release(n int64) { r.mem.Add(-n) }

// reserve charges n, evicting the oldest datagrams other than d until it
// fits. s, d's shard, is locked.
func (r *Reassembler) reserve(s *shard, d *datagram, n int64) bool {
	for !r.tryCharge(n) {
		if !r.evictOldest(s, d) {
			return false
		}
	}
	return true
}

// evictOldest drops the oldest datagram of any shard, d excepted, for
// memory, and reports whether it found one. s is locked; another shard is
// locked only in the order shard.mu allows, and one busy with a lower
// index is passed over for the next oldest rather than waited for.
func (r *Reassembler) evictOldest(s *shard, d *datagram) bool {
	var skip uint32
	for {
		best, bestSeq := -1, uint64(math.MaxUint64)
		for j := range r.shards {
			if skip&(1<<j) != 0 {
				continue
			}
			seq := r.shards[j].oldest.Load()
			if j == s.idx {
				seq = math.MaxUint64
				if v := s.oldestBut(d); v != nil {
					seq = v.seq
				}
			}
			if seq < bestSeq {
				best, bestSeq = j, seq
			}
		}
		switch {
		case best < 0:
			return false
		case best == s.idx:
			s.drop(r, s.oldestBut(d), ReasonMemory)
			return true
		}
		t := &r.shards[best]
		if best > s.idx {
			t.mu.Lock()
		} else if !t.mu.TryLock() {
			skip |= 1 << best
			continue
		}
		// The head may have changed since oldest was read; it is still
		// that shard's oldest.
		v := t.head
		if v != nil {
			t.drop(r, v, ReasonMemory)
		}
		t.mu.Unlock()
		if v != nil {
			return true
		}
		skip |= 1 << best
	}
}

// oldestBut is the shard's oldest datagram other than d.
func (s *shard) oldestBut(d *datagram) *datagram {
	v := s.head
	if v == d && v != nil {
		v = v.next
	}
	return v
}
