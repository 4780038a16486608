package conntrack

import (
	"testing"
	"time"
)

// atHome is the share of live flows sitting at one of their home slots,
// where a lookup finds them without the index.
func atHome(t *Table) float64 {
	var live, home int
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for slot := uint32(1); slot < s.nslots; slot++ {
			e := s.at(slot)
			if e.flags&eInUse == 0 {
				continue
			}
			live++
			if a, b := s.homes(t.hash(&e.key)); slot == a || slot == b {
				home++
			}
		}
		s.mu.Unlock()
	}
	return float64(home) / float64(max(live, 1))
}

// TestHomeSlots checks that most flows stay at a home slot while the
// table grows and while flows come and go, and that the moves growth
// makes keep the table consistent.
func TestHomeSlots(t *testing.T) {
	const n = 1 << 16
	tab, clk := newTestTable(t, func(c *Config) {
		c.MaxFlows = 4 * n
		c.MaxFlowsPerSource = 1 << 20
		c.MaxHalfOpenPerSource = 1 << 20
		c.MaxHalfOpen = 1
	})
	for i := range uint32(n) {
		if err := tab.Commit(&Packet{Key: benchKey(i), Len: 100}, Verdict{}); err != nil {
			t.Fatal(err)
		}
	}
	checkInvariants(t, tab)
	filled := atHome(tab)
	// Churn: half the flows expire, as many new ones arrive.
	for i := range uint32(n) {
		if i%2 == 0 {
			if r := tab.Track(&Packet{Key: benchKey(i), Len: 100}); !r.Found {
				t.Fatalf("flow %d lost", i)
			}
		}
	}
	clk.Advance(31 * time.Second)
	for i := range uint32(n) {
		if i%2 == 1 {
			if r := tab.Track(&Packet{Key: benchKey(i), Len: 100}); r.Found {
				t.Fatalf("flow %d outlived its timeout", i)
			}
		}
	}
	for i := range uint32(n / 2) {
		if err := tab.Commit(&Packet{Key: benchKey(n + i), Len: 100}, Verdict{}); err != nil {
			t.Fatal(err)
		}
	}
	checkInvariants(t, tab)
	churned := atHome(tab)
	t.Logf("flows at a home slot: %.1f%% after filling, %.1f%% after churn", 100*filled, 100*churned)
	if filled < 0.7 || churned < 0.6 {
		t.Errorf("too few flows at a home slot: %.2f filled, %.2f churned", filled, churned)
	}
	for i := range uint32(n / 2) {
		for _, k := range []Key{benchKey(2 * i), benchKey(n + i)} {
			if _, _, ok := flow(tab, k); !ok {
				t.Fatalf("flow %v lost", k)
			}
		}
	}
}
