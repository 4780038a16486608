package decisionlog

import (
	"testing"
	"time"
)

func TestBucket(t *testing.T) {
	type step struct {
		advance  time.Duration
		set      *[2]float64 // rate, burst: Set before taking
		takes    int
		wantTook int
	}
	set := func(rate, burst float64) *[2]float64 { return &[2]float64{rate, burst} }
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"new bucket is unlimited", []step{{takes: 1000, wantTook: 1000}}},
		{"burst, then nothing on a stopped clock", []step{{set: set(2, 3), takes: 5, wantTook: 3}}},
		{"refills at rate", []step{
			{set: set(2, 2), takes: 2, wantTook: 2},
			{advance: time.Second / 2, takes: 5, wantTook: 1},
			{advance: 10 * time.Second, takes: 5, wantTook: 2}, // refill stops at burst
		}},
		{"burst below 1 is 1", []step{{set: set(1, 0), takes: 3, wantTook: 1}}},
		{"rate <= 0 is unlimited", []step{{set: set(0, 1), takes: 100, wantTook: 100}, {set: set(-1, 1), takes: 100, wantTook: 100}}},
		{"a reload does not refill", []step{
			{set: set(1, 5), takes: 5, wantTook: 5},
			{set: set(1, 5), takes: 1, wantTook: 0},
			{set: set(2, 10), takes: 1, wantTook: 0},
		}},
		{"a smaller burst clamps what is left", []step{
			{set: set(1, 10), takes: 1, wantTook: 1},
			{set: set(1, 2), takes: 10, wantTook: 2},
		}},
		{"limited after unlimited starts full", []step{
			{set: set(0, 1), takes: 50, wantTook: 50},
			{set: set(1, 4), takes: 10, wantTook: 4},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Unix(1000, 0)
			b := NewBucket(func() time.Time { return now })
			for i, s := range tc.steps {
				now = now.Add(s.advance)
				if s.set != nil {
					b.Set(s.set[0], int(s.set[1]))
				}
				took := 0
				for range s.takes {
					if b.Take() {
						took++
					}
				}
				if took != s.wantTook {
					t.Errorf("step %d: got %d of %d takes; want %d", i, took, s.takes, s.wantTook)
				}
			}
		})
	}
}

func TestNewBucketNilClock(t *testing.T) {
	b := NewBucket(nil)
	b.Set(1, 1)
	if got := b.Take(); !got {
		t.Errorf("first Take: got %v; want true", got)
	}
}

func TestBucketTakeAllocs(t *testing.T) {
	b := NewBucket(nil)
	b.Set(1e9, 1000)
	if a := testing.AllocsPerRun(1000, func() { b.Take() }); a != 0 {
		t.Errorf("allocations per Take: got %v; want 0", a)
	}
}
