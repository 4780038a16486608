package conntrack

// Commit creates the entry for p, a first packet that Track reported as
// StateNew and the policy allowed, with v as the cached verdict. A flow that
// already exists (a concurrent Commit won) is left as it is and Commit
// returns nil. A SYN for a connection in TIME_WAIT or CLOSE replaces it
// (RFC 1122 reopen).
//
// Limits, in order: a source (IPv6: its /64) with max_flows_per_source
// flows gets ErrSourceLimit, one with max_half_open_per_source unreplied
// flows ErrHalfOpenLimit. When unreplied flows fill their max_half_open
// share of the table, the oldest unreplied flow is evicted. When the table
// is full the oldest unreplied flow is evicted, else the unassured flow
// whose reply came longest ago;
// if every flow is assured Commit returns ErrTableFull.
func (t *Table) Commit(p *Packet, v Verdict) error {
	if !t.canOpen(p) {
		return ErrNotNew
	}
	k := p.Key
	h := t.hash(&k)
	s := t.shardFor(h)
	now := t.now()

	s.mu.Lock()
	if t.existsOrReopen(s, p, h, now) {
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()

	// Reserve capacity without holding s.mu: eviction locks other shards,
	// and two shards locked in opposite orders would deadlock.
	src := sourceOf(&k)
	if err := t.reserveSource(&src); err != nil {
		s.mu.Lock()
		s.ctr[cInsertFailed]++
		if err == ErrSourceLimit {
			s.ctr[cSourceLimit]++
		} else {
			s.ctr[cHalfOpenLimit]++
		}
		s.mu.Unlock()
		return err
	}
	if !t.reserveHalfOpenAndSlot() {
		t.releaseSource(&src, true)
		s.mu.Lock()
		s.ctr[cInsertFailed]++
		s.ctr[cDrop]++
		s.mu.Unlock()
		return ErrTableFull
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	// Read the clock again under the lock that inserts: the reservation
	// may have taken a while, and a shard's flows must join its unreplied
	// list in order of creation.
	now = t.now()
	if t.existsOrReopen(s, p, h, now) {
		t.count.Add(-1)
		t.halfOpen.Add(-1)
		t.releaseSource(&src, true)
		return nil
	}
	e := entry{
		key:      k,
		flags:    eInUse,
		verdict:  v,
		created:  now,
		packets:  [2]uint64{1, 0},
		bytes:    [2]uint64{uint64(max(p.Len, 0)), 0},
		deadline: now + t.firstTimeout(p),
	}
	if k.Proto == protoTCP {
		if p.TCPFlags&flagSYN != 0 {
			e.tcp = TCPSynSent
			e.conn.initFromSYN(p)
		} else {
			e.tcp = TCPEstablished
			e.conn.initPickup(p)
		}
	}
	slot := s.insert(&e, h)
	s.ctr[cInsert]++
	if t.ev.active() {
		t.ev.emit(t, EventNew, s.at(slot), 0, now)
	}
	return nil
}

func (t *Table) firstTimeout(p *Packet) int64 {
	switch p.Key.Proto {
	case protoTCP:
		if p.TCPFlags&flagSYN == 0 {
			// A pickup lives at most UNACK until the other side answers.
			return min(t.tcpTimeout[TCPEstablished], t.tcpUnackTO)
		}
		return t.tcpTimeout[TCPSynSent]
	case protoUDP:
		return t.udpTimeout
	}
	return t.icmpTimeout
}

// existsOrReopen reports whether p's flow is already tracked, first removing
// a closed TCP connection that p, a SYN, reopens. Called with s.mu held.
func (t *Table) existsOrReopen(s *shard, p *Packet, h uint64, now int64) bool {
	slot, _, ok := s.lookup(t, &p.Key, h, now)
	if !ok {
		return false
	}
	if e := s.at(slot); e.key.Proto == protoTCP && p.TCPFlags&flagSYN != 0 &&
		(e.tcp == TCPTimeWait || e.tcp == TCPClose) {
		s.remove(t, slot, reasonClosed)
		s.ctr[cRemoved]++
		return false
	}
	return true
}

// reserveHalfOpenAndSlot takes a place among the unreplied flows and one
// in the table. When the half-open share is used up, the oldest unreplied
// flow is evicted and both its places pass to the caller.
func (t *Table) reserveHalfOpenAndSlot() bool {
	for {
		h := t.halfOpen.Load()
		if h >= t.maxHalfOpen {
			if t.evictOldest(listUnreplied, true) {
				return true
			}
			// Nothing to evict: the unreplied places are all
			// reservations in flight. Refuse rather than spin.
			return false
		}
		if t.halfOpen.CompareAndSwap(h, h+1) {
			break
		}
	}
	if !t.reserveSlot() {
		t.halfOpen.Add(-1)
		return false
	}
	return true
}

// reserveSlot takes one of maxFlows places in count, evicting when none
// is free. The compare-and-swap keeps count at or below maxFlows at every
// instant, so Len never overshoots, and an eviction hands the victim's
// place straight to the evicting caller, so concurrent inserters into a
// full table cannot starve each other.
func (t *Table) reserveSlot() bool {
	for {
		c := t.count.Load()
		if c >= t.maxFlows {
			return t.earlyDrop()
		}
		if t.count.CompareAndSwap(c, c+1) {
			return true
		}
	}
}
