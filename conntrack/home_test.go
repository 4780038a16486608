package conntrack

import (
	"sync"
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

// TestHomeSlots checks that after the sweeper's passes following the
// arena's last growth most flows sit at a home slot, and still do while
// flows come and go, and that the moves keep the table consistent.
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
	grown := atHome(tab)
	tab.sweepAll()
	tab.sweepAll()
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
	t.Logf("flows at a home slot: %.1f%% after filling, %.1f%% after two sweeps, %.1f%% after churn",
		100*grown, 100*filled, 100*churned)
	if filled < 0.8 || churned < 0.75 {
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

// TestHomeMovesConcurrent grows shards while the sweeper re-places flows
// and other goroutines insert, answer, track and delete flows, then checks
// the structure: moves keep index words, list links and free bits right.
func TestHomeMovesConcurrent(t *testing.T) {
	const n = 1 << 14
	tab, clk := newTestTable(t, func(c *Config) {
		c.MaxFlows = n
		c.MaxFlowsPerSource = 1 << 20
		c.MaxHalfOpenPerSource = 1 << 20
		c.MaxHalfOpen = 0.5
	})
	done := make(chan struct{})
	var sweeper sync.WaitGroup
	sweeper.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
				tab.sweepAll()
			}
		}
	})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range uint32(3 * n / 2) {
				k := benchKey(i*4 + uint32(g))
				switch i % 8 {
				case 7:
					tab.Delete(benchKey((i-5)*4 + uint32(g)))
				case 6:
					clk.Advance(time.Millisecond)
				default:
					if r := tab.Track(&Packet{Key: k, Len: 60}); r.State == StateNew {
						_ = tab.Commit(&Packet{Key: k, Len: 60}, Verdict{})
					}
					if i%3 == 0 {
						tab.Track(&Packet{Key: replyKey(&k), Len: 60})
					}
				}
			}
		})
	}
	wg.Wait()
	close(done)
	sweeper.Wait()
	checkInvariants(t, tab)
	if tab.Len() < n/2 {
		t.Fatalf("only %d flows", tab.Len())
	}
}
