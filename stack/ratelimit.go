package stack

import (
	"sync"
	"time"
)

// bucket is a token bucket shared by the readers: the decision log's
// budget and [reject] max_rate. A reload changes its rate without
// resetting what was spent, so a reload cannot be used to refill it.
type bucket struct {
	now func() time.Time

	mu     sync.Mutex // guards tokens, last, rate, burst
	tokens float64
	last   time.Time
	rate   float64 // tokens per second; <= 0 means unlimited
	burst  float64
}

func newBucket(now func() time.Time) *bucket {
	if now == nil {
		now = time.Now
	}
	return &bucket{now: now}
}

// set installs rate (per second, <= 0: unlimited) and burst (at least 1).
// A bucket that was unlimited starts full.
func (b *bucket) set(rate float64, burst int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	wasUnlimited := b.rate <= 0
	b.refillLocked()
	b.rate = rate
	b.burst = float64(max(burst, 1))
	if wasUnlimited || b.tokens > b.burst {
		b.tokens = b.burst
	}
}

func (b *bucket) refillLocked() {
	now := b.now()
	if dt := now.Sub(b.last).Seconds(); dt > 0 && b.rate > 0 {
		b.tokens = min(b.burst, b.tokens+dt*b.rate)
	}
	b.last = now
}

// take spends one token and reports whether there was one.
func (b *bucket) take() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.rate <= 0 {
		return true
	}
	b.refillLocked()
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
