package conntrack

import (
	"math/rand/v2"
	"testing"
	"time"
)

// slotKey is a distinct key per i for the shard-level tests.
func slotKey(i int) Key { return benchKey(uint32(i)) }

// checkSlots verifies the open-addressing invariants of s for flows whose
// hashes the test chose: each full slot is reachable from its home
// without crossing an empty slot, find returns it, the control bytes'
// copy past the end matches, and live counts the full slots.
func checkSlots(t *testing.T, s *shard, hashes map[Key]uint64) {
	t.Helper()
	full := 0
	for slot := uint32(1); slot <= s.nslots; slot++ {
		if s.ctrl[slot] == ctrlEmpty {
			continue
		}
		full++
		e := s.at(slot)
		h, ok := hashes[e.key]
		if !ok {
			t.Fatalf("slot %d holds unknown key", slot)
		}
		if s.ctrl[slot] != ctrlTag(h) || s.hash32[slot] != uint32(h) {
			t.Fatalf("slot %d: control byte or hash does not match its flow", slot)
		}
		for p := home(uint32(h), s.nslots); p != slot; p = s.nextSlot(p) {
			if s.ctrl[p] == ctrlEmpty {
				t.Fatalf("slot %d: empty slot %d between it and its home", slot, p)
			}
		}
		if got, _, ok := s.find(&e.key, h); !ok || got != slot {
			t.Fatalf("slot %d: find returns %d %v", slot, got, ok)
		}
	}
	if full != s.live || full != len(hashes) {
		t.Fatalf("%d full slots, live %d, %d flows", full, s.live, len(hashes))
	}
	for k := uint32(1); k <= group; k++ {
		if s.ctrl[s.nslots+k] != s.ctrl[k] {
			t.Fatalf("control byte copy %d differs", k)
		}
	}
}

// TestSlotsRandomAgainstOracle inserts and deletes flows at random in one
// shard, with hashes drawn from a small range so runs are long, collide,
// and wrap past the last slot, checking the structure after every step.
func TestSlotsRandomAgainstOracle(t *testing.T) {
	for _, spread := range []uint64{1 << 32, 1 << 29, 1 << 26} {
		rng := rand.New(rand.NewPCG(1, spread))
		s := &shard{}
		hashes := map[Key]uint64{}
		var keys []Key
		for step := range 4000 {
			if len(keys) > 0 && rng.IntN(100) < 45 {
				i := rng.IntN(len(keys))
				k := keys[i]
				slot, _, ok := s.find(&k, hashes[k])
				if !ok {
					t.Fatalf("step %d: flow missing", step)
				}
				s.vacate(slot)
				s.live--
				delete(hashes, k)
				keys[i] = keys[len(keys)-1]
				keys = keys[:len(keys)-1]
			} else {
				k := slotKey(step)
				// The low 32 bits pick the home; values near the top of
				// the range land at the last slots and wrap.
				h := rng.Uint64()&^(1<<32-1) | (1<<32-1-rng.Uint64N(spread))&(1<<32-1)
				e := entry{key: k, flags: eInUse | eAssured, deadline: 1} // assured: no list node
				s.insert(&e, h)
				hashes[k] = h
				keys = append(keys, k)
			}
			checkSlots(t, s, hashes)
		}
		for _, k := range keys {
			if _, _, ok := s.find(&k, hashes[k]); !ok {
				t.Fatal("flow lost")
			}
		}
		if s.rebuilds == 0 {
			t.Fatal("the table never grew")
		}
	}
}

// TestSlotsMoveKeepsLists deletes flows from the middle of long runs and
// checks that the flows shifted back keep their list nodes: the nodes
// follow the flows, and the list order stays the creation order.
func TestSlotsMoveKeepsLists(t *testing.T) {
	tab, clk := newTestTable(t, func(c *Config) {
		c.MaxHalfOpenPerSource = 1 << 20
		c.MaxFlowsPerSource = 1 << 20
		c.MaxHalfOpen = 1
	})
	var keys []Key
	for i := range 3000 {
		clk.Advance(1)
		k := benchKey(uint32(i))
		mustCommit(t, tab, &Packet{Key: k, Len: 60})
		keys = append(keys, k)
	}
	for i, k := range keys {
		if i%3 == 0 && !tab.Delete(k) {
			t.Fatalf("delete %d", i)
		}
	}
	checkInvariants(t, tab)
	for i, k := range keys {
		r := tab.Track(&Packet{Key: k, Len: 60})
		if r.Found != (i%3 != 0) {
			t.Fatalf("flow %d: found %v", i, r.Found)
		}
	}
	checkInvariants(t, tab)
}

// TestShrinkAfterFlood fills the table, lets the flows expire and checks
// that the sweeper gives the memory back and the survivors stay tracked.
func TestShrinkAfterFlood(t *testing.T) {
	tab, clk := newTestTable(t, func(c *Config) {
		c.MaxHalfOpenPerSource = 1 << 20
		c.MaxFlowsPerSource = 1 << 20
		c.MaxHalfOpen = 1
	})
	slots := func() (n int) {
		for i := range tab.shards {
			n += int(tab.shards[i].nslots)
		}
		return n
	}
	keep := tcpKey("198.18.0.9", "198.18.1.1", 1, 80)
	runTCP(t, tab, keep, handshake) // established: 5 days
	for i := range 20000 {
		mustCommit(t, tab, &Packet{Key: benchKey(uint32(i)), Len: 60})
	}
	full := slots()
	clk.Advance(31 * time.Second) // the UDP flows expire
	tab.sweepAll()
	checkInvariants(t, tab)
	if got := slots(); got*4 > full || tab.Len() != 1 {
		t.Fatalf("after expiry: %d slots (from %d), %d flows", got, full, tab.Len())
	}
	nodes := 0
	for i := range tab.shards {
		nodes += cap(tab.shards[i].nodes)
	}
	if nodes > 64*20 {
		t.Errorf("%d list nodes still allocated for no unassured flow", nodes)
	}
	if r := tab.Track(&Packet{Key: keep, TCPFlags: fACK}); !r.Found {
		t.Fatal("the established flow was lost in the shrink")
	}
}

// TestPreallocate: a preallocated table holds max_flows without growing a
// shard, and the sweeper does not shrink it below its size.
func TestPreallocate(t *testing.T) {
	const maxFlows = 20000
	tab, clk := newTestTable(t, func(c *Config) {
		c.MaxFlows = maxFlows
		c.MaxHalfOpenPerSource = 1 << 20
		c.MaxFlowsPerSource = 1 << 20
		c.MaxHalfOpen = 1
		c.Preallocate = true
	})
	sizes := make([]uint32, numShards)
	for i := range tab.shards {
		sizes[i] = tab.shards[i].nslots
		if tab.shards[i].rebuilds != 1 {
			t.Fatalf("shard %d: %d rebuilds at start, want 1", i, tab.shards[i].rebuilds)
		}
	}
	for i := range maxFlows {
		mustCommit(t, tab, &Packet{Key: benchKey(uint32(i)), Len: 60})
	}
	checkInvariants(t, tab)
	clk.Advance(time.Hour)
	tab.sweepAll()
	for i := range tab.shards {
		if s := &tab.shards[i]; s.rebuilds != 1 || s.nslots != sizes[i] {
			t.Errorf("shard %d: %d rebuilds, %d slots (from %d)", i, s.rebuilds, s.nslots, sizes[i])
		}
	}
	if tab.Len() != 0 {
		t.Fatalf("Len %d after expiry", tab.Len())
	}
	checkInvariants(t, tab)
}
