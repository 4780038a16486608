package conntrack

import (
	"context"
	"time"
)

const (
	sweepInterval  = 100 * time.Millisecond
	shardsPerSweep = 2   // a full pass every 3.2 s
	sweepChunk     = 512 // slots examined per lock hold, bounding packet latency
)

// Run sweeps expired flows in the background until ctx is done. Lookups
// already ignore and remove expired entries; the sweeper reclaims the ones
// nobody looks up again. The caller owns the goroutine running Run.
func (t *Table) Run(ctx context.Context) {
	tick := time.NewTicker(sweepInterval)
	defer tick.Stop()
	next := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
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
