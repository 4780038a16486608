package conntrack

import (
	"context"
	"math"
	"time"
)

const (
	coarseTick     = 10 * time.Millisecond
	sweepInterval  = 100 * time.Millisecond
	shardsPerSweep = 2 // a full pass every 3.2 s
)

// Run sweeps expired flows and keeps the packet path's coarse clock until
// ctx is done. Lookups already ignore and remove expired entries; the
// sweeper reclaims the ones nobody looks up again. Run is meant to run
// once per table, on a goroutine the caller owns.
func (t *Table) Run(ctx context.Context) {
	if t.nowFn == nil {
		t.coarse.Store(max(1, int64(time.Since(t.epoch))))
		// Back to the precise clock on exit, so a stopped Run never leaves
		// the table with a frozen one.
		defer t.coarse.Store(0)
	}
	clock := time.NewTicker(coarseTick)
	defer clock.Stop()
	sweep := time.NewTicker(sweepInterval)
	defer sweep.Stop()
	next := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-clock.C:
			if t.nowFn == nil {
				t.coarse.Store(max(1, int64(time.Since(t.epoch))))
			}
		case <-sweep.C:
			for range shardsPerSweep {
				t.sweepShard(&t.shards[next])
				next = (next + 1) % numShards
			}
		}
	}
}

// sweepAll sweeps every shard once.
func (t *Table) sweepAll() {
	for i := range t.shards {
		t.sweepShard(&t.shards[i])
	}
}

// sweepShard removes s's expired entries one chunk per lock hold, which
// bounds the latency a sweep adds to packets. A chunk whose earliest
// deadline lies ahead is skipped without reading its entries, so a sweep
// of a table where nothing expires touches a few bytes per 256 flows.
// After the pass a shard left less than a quarter full shrinks, so the
// memory a flood took comes back once its flows expire.
func (t *Table) sweepShard(s *shard) {
	for ci := 0; ; ci++ {
		now := t.now()
		s.mu.Lock()
		if ci >= len(s.minDeadline) {
			if s.nslots > max(minSlots, s.floor) && uint64(s.live)*4 < uint64(s.nslots) {
				s.rebuild(s.live)
				s.compactNodes()
			}
			s.mu.Unlock()
			return
		}
		if now >= s.minDeadline[ci] {
			s.sweepChunk(t, ci, now)
		}
		s.mu.Unlock()
	}
}

// sweepChunk removes chunk ci's expired entries and makes its
// minDeadline exact. Called with s.mu held. A removal shifts later
// flows of the run back, possibly into the slot just examined, so the
// slot is examined again, and the bound is computed once nothing more
// expires.
func (s *shard) sweepChunk(t *Table, ci int, now int64) {
	lo := ci << chunkBits
	hi := min(lo+chunkSize, len(s.entries))
	for i := lo; i < hi; i++ {
		if e := &s.entries[i]; e.flags&eInUse != 0 && now >= e.deadline {
			s.remove(t, uint32(i), reasonExpired)
			s.ctr[cExpired]++
			i--
		}
	}
	low := int64(math.MaxInt64)
	for i := lo; i < hi; i++ {
		if e := &s.entries[i]; e.flags&eInUse != 0 {
			low = min(low, e.deadline)
		}
	}
	s.minDeadline[ci] = low
}
