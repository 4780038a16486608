package conntrack

import (
	"context"
	"time"
)

const (
	coarseTick     = 10 * time.Millisecond
	sweepInterval  = 100 * time.Millisecond
	shardsPerSweep = 2   // a full pass every 3.2 s
	sweepChunk     = 512 // slots examined per lock hold, bounding packet latency
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

// sweepShard removes s's expired entries, sweepChunk slots per lock hold.
func (t *Table) sweepShard(s *shard) {
	for start := 1; ; start += sweepChunk {
		now := t.now()
		s.mu.Lock()
		end := min(start+sweepChunk, len(s.entries))
		for i := start; i < end; i++ {
			e := &s.entries[i]
			if e.flags&eInUse != 0 && now >= e.deadline {
				s.remove(t, uint32(i))
				s.ctr[cExpired].Add(1)
			}
		}
		done := end >= len(s.entries)
		s.mu.Unlock()
		if done {
			return
		}
	}
}
