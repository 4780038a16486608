package decisionlog

import (
	"sync"
	"time"
)

// Bucket is a token bucket. The decision log spends one token per line;
// the stack's [reject] max_rate uses one of its own, which is why it is
// exported. A reload changes the rate without refilling what was spent,
// so reloading cannot be used to reset the budget.
type Bucket struct {
	now func() time.Time

	mu     sync.Mutex // guards tokens, last, rate, burst
	tokens float64
	last   time.Time
	rate   float64 // tokens per second; <= 0 means unlimited
	burst  float64
}

// NewBucket returns an unlimited bucket reading the clock through now
// (nil: time.Now).
func NewBucket(now func() time.Time) *Bucket {
	if now == nil {
		now = time.Now
	}
	return &Bucket{now: now}
}

// Set installs rate (tokens per second; <= 0: unlimited) and burst (at
// least 1). A bucket that was unlimited starts full; one that holds more
// than the new burst keeps only the burst.
func (b *Bucket) Set(rate float64, burst int) {
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

// Take spends one token and reports whether there was one.
func (b *Bucket) Take() bool {
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

func (b *Bucket) refillLocked() {
	now := b.now()
	if dt := now.Sub(b.last).Seconds(); dt > 0 && b.rate > 0 {
		b.tokens = min(b.burst, b.tokens+dt*b.rate)
	}
	b.last = now
}
