package reassembly

// Stats counts what a Reassembler did, and holds now. Every fragment Add
// was given is in exactly one of FragmentsReassembled, Atomic,
// FragmentsDropped and FragmentsHeld.
type Stats struct {
	Fragments            uint64 // fragments Add was given
	Reassembled          uint64 // datagrams completed from two or more fragments
	FragmentsReassembled uint64 // the fragments those datagrams were made of
	Atomic               uint64 // IPv6 atomic fragments, complete by themselves (RFC 6946)
	// FragmentsDropped counts discarded fragments by reason: those Add
	// refused, those a datagram held when it was discarded whole, and
	// later ones for a datagram already discarded (under the reason it
	// was). ReasonDuplicate counts copies; their datagram went on.
	FragmentsDropped [NumReasons]uint64
	// DatagramsDropped counts by reason the incomplete datagrams
	// discarded whole.
	DatagramsDropped [NumReasons]uint64
	FragmentsHeld    int   // fragments held now
	DatagramsHeld    int   // incomplete datagrams held now
	Tombstones       int   // discarded datagrams remembered until their timeout
	MemoryInUse      int64 // bytes charged to Config.Memory, never above it
}

// counters are one shard's share of Stats, under its mutex.
type counters struct {
	fragments            uint64
	reassembled          uint64
	fragmentsReassembled uint64
	fragmentsDropped     [NumReasons]uint64
	datagramsDropped     [NumReasons]uint64
	held                 int
	inProgress           int
	tombstones           int
}

// Stats returns the counters, summed shard by shard: a snapshot of each
// shard, not of all at one instant.
func (r *Reassembler) Stats() Stats {
	st := Stats{Atomic: r.atomic.Load()}
	st.Fragments = st.Atomic
	for i := range r.early {
		n := r.early[i].Load()
		st.FragmentsDropped[i] += n
		st.Fragments += n
	}
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		c := s.n
		s.mu.Unlock()
		st.Fragments += c.fragments
		st.Reassembled += c.reassembled
		st.FragmentsReassembled += c.fragmentsReassembled
		for j := range c.fragmentsDropped {
			st.FragmentsDropped[j] += c.fragmentsDropped[j]
			st.DatagramsDropped[j] += c.datagramsDropped[j]
		}
		st.FragmentsHeld += c.held
		st.DatagramsHeld += c.inProgress
		st.Tombstones += c.tombstones
	}
	st.MemoryInUse = r.mem.Load()
	return st
}
