package conntrack

// Commit creates the entry for p, a first packet that Track reported as
// StateNew and the policy allowed, with v as the cached verdict. A flow that
// already exists (a concurrent Commit won) is left as it is and Commit
// returns nil. A SYN for a connection in TIME_WAIT or CLOSE replaces it
// (RFC 1122 reopen).
//
// When the table is full the oldest unassured flow is evicted; if every
// flow is assured Commit returns ErrTableFull. A source (IPv6: its /64)
// with max_flows_per_source flows gets ErrSourceLimit.
func (t *Table) Commit(p *Packet, v Verdict) error {
	if !canOpen(p) {
		return ErrNotNew
	}
	k := p.Key
	rk := replyKey(&k)
	s := t.shardOf(&k)
	now := t.now()

	s.mu.Lock()
	if t.existsOrReopen(s, p, now) {
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()

	// Reserve capacity without holding s.mu: early drop locks other
	// shards, and two shards locked in opposite orders would deadlock.
	src := sourceOf(&k)
	if !t.reserveSource(&src) {
		s.ctr[cInsertFailed].Add(1)
		s.ctr[cSourceLimit].Add(1)
		return ErrSourceLimit
	}
	if !t.reserveSlot() {
		t.releaseSource(&src)
		s.ctr[cInsertFailed].Add(1)
		s.ctr[cDrop].Add(1)
		return ErrTableFull
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if t.existsOrReopen(s, p, now) {
		t.count.Add(-1)
		t.releaseSource(&src)
		return nil
	}
	e := entry{
		key:      k,
		flags:    eInUse,
		verdict:  v,
		created:  now,
		packets:  [2]uint64{1, 0},
		bytes:    [2]uint64{uint64(max(p.Len, 0)), 0},
		deadline: now + t.firstTimeout(&k),
	}
	if k.Proto == protoTCP {
		e.tcp = TCPSynSent
	}
	s.insert(e, &rk)
	s.ctr[cInsert].Add(1)
	return nil
}

func (t *Table) firstTimeout(k *Key) int64 {
	switch k.Proto {
	case protoTCP:
		return t.tcpTimeout[TCPSynSent]
	case protoUDP:
		return t.udpTimeout
	}
	return t.icmpTimeout
}

// existsOrReopen reports whether p's flow is already tracked, first removing
// a closed TCP connection that p, a SYN, reopens. Called with s.mu held.
func (t *Table) existsOrReopen(s *shard, p *Packet, now int64) bool {
	slot, _, ok := s.lookup(t, &p.Key, now)
	if !ok {
		// Both keys of a flow are indexed together and each is the other's
		// reply key (canOpen refuses ICMP keys with a DstPort), so the
		// reply key cannot be indexed either.
		return false
	}
	if e := &s.entries[slot]; e.key.Proto == protoTCP && (e.tcp == TCPTimeWait || e.tcp == TCPClose) {
		s.remove(t, slot)
		s.ctr[cRemoved].Add(1)
		return false
	}
	return true
}

// reserveSlot takes one of maxFlows places in count, evicting the oldest
// unassured flow when none is free. The compare-and-swap keeps count at or
// below maxFlows at every instant, so Len never overshoots, and an
// eviction hands the victim's place straight to the evicting caller, so
// concurrent inserters into a full table cannot starve each other.
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
