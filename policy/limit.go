package policy

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"sync"
)

type limitPer uint8

const (
	perSrc limitPer = iota
	perDst
	perRule
)

// Limiter table geometry: limitSets buckets of limitWays slots each. A key
// hashes to one bucket and takes a free slot there or evicts the bucket's
// least recently used key, so a rule's memory is fixed (32 KiB) however
// many sources it sees. An evicted key starts again with a full bucket,
// which is what it would have after being idle anyway.
const (
	limitSets = 256
	limitWays = 4
)

// limiter is a rule's limit: token buckets per key.
type limiter struct {
	cfg   LimitConfig // as configured, to carry state only to an identical limit
	per   limitPer
	over  bool    // match = "over": the condition holds when no token is left
	rate  float64 // tokens per nanosecond
	burst float64
	seed  uint64

	mu    sync.Mutex // guards slots
	slots []bucket   // allocated on first use; one slot when per = "rule"
}

type bucket struct {
	key    [16]byte
	tokens float64
	last   int64 // unix ns of the last refill; 0 = free slot
}

func newLimiter(cfg LimitConfig, per limitPer, perSecond float64, burst int, over bool) *limiter {
	return &limiter{cfg: cfg, per: per, over: over, rate: perSecond / 1e9, burst: float64(burst), seed: rand.Uint64()}
}

// match applies the limit to a flow that met every other condition of the
// rule, taking a token when one is available.
func (l *limiter) match(a netip.Addr, now int64) bool {
	l.mu.Lock()
	b := l.slot(a, now)
	b.refill(now, l.rate, l.burst)
	took := b.tokens >= 1
	if took {
		b.tokens--
	}
	l.mu.Unlock()
	return took != l.over
}

// peek is match without taking a token or claiming a slot (for Explain).
func (l *limiter) peek(a netip.Addr, now int64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	avail := true
	if l.slots != nil {
		var k [16]byte
		if l.per != perRule {
			k = a.As16()
		}
		for _, b := range l.bucketOf(k) { // copies: peeking changes nothing
			if b.last != 0 && b.key == k {
				b.refill(now, l.rate, l.burst)
				avail = b.tokens >= 1
			}
		}
	}
	return avail != l.over
}

func (b *bucket) refill(now int64, rate, burst float64) {
	if d := now - b.last; d > 0 {
		b.tokens = min(burst, b.tokens+float64(d)*rate)
	}
	b.last = now
}

func (l *limiter) bucketOf(k [16]byte) []bucket {
	if l.per == perRule {
		return l.slots[:1]
	}
	// Fold the halves, then a full-avalanche finaliser (as in splitmix64)
	// so addresses differing only in their last byte spread over buckets.
	h := binary.BigEndian.Uint64(k[:8])*0x9e3779b97f4a7c15 ^ binary.BigEndian.Uint64(k[8:]) ^ l.seed
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	i := int(h%limitSets) * limitWays
	return l.slots[i : i+limitWays]
}

// slot finds a's bucket, claiming one (full of tokens) for a new key.
func (l *limiter) slot(a netip.Addr, now int64) *bucket {
	if l.slots == nil {
		n := limitSets * limitWays
		if l.per == perRule {
			n = 1
		}
		l.slots = make([]bucket, n)
	}
	var k [16]byte
	if l.per != perRule {
		k = a.As16()
	}
	set := l.bucketOf(k)
	victim := &set[0]
	for i := range set {
		b := &set[i]
		if b.last != 0 && b.key == k {
			return b
		}
		if b.last < victim.last {
			victim = b
		}
	}
	*victim = bucket{key: k, tokens: l.burst, last: now}
	return victim
}
