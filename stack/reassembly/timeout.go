package reassembly

// Expire drops the datagrams that are still incomplete Config.Timeout
// after their first fragment arrived, counting them, and forgets the
// tombstones as old. Add does the same for the shard it works in, so
// Expire only bounds how long a shard nobody sends to keeps its memory.
func (r *Reassembler) Expire() {
	now := r.clock()
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		s.expire(r, now)
		s.mu.Unlock()
	}
}

// expire drops the shard's timed-out datagrams. The list is in creation
// order and the timeout is one for all, so they are all at its head.
func (s *shard) expire(r *Reassembler, now int64) {
	for s.head != nil && s.head.deadline <= now {
		s.drop(r, s.head, ReasonTimeout)
	}
}
