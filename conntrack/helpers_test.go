package conntrack

import (
	"math"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is an injectable clock safe for concurrent use.
type fakeClock struct{ ns atomic.Int64 }

var clockBase = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func (c *fakeClock) Now() time.Time          { return clockBase.Add(time.Duration(c.ns.Load())) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func newTestTable(tb testing.TB, mutate func(*Config)) (*Table, *fakeClock) {
	tb.Helper()
	var cfg Config
	cfg.Defaults()
	if mutate != nil {
		mutate(&cfg)
	}
	if errs := cfg.Validate(); len(errs) > 0 {
		tb.Fatalf("config: %v", errs)
	}
	clk := &fakeClock{}
	return New(cfg, Options{Now: clk.Now}), clk
}

func mkKey(proto uint8, src, dst string, sport, dport uint16) Key {
	s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
	k := Key{SrcPort: sport, DstPort: dport, Proto: proto, Family: 4}
	if s.Is4() {
		a, b := s.As4(), d.As4()
		copy(k.Src[:], a[:])
		copy(k.Dst[:], b[:])
	} else {
		k.Family = 6
		k.Src, k.Dst = s.As16(), d.As16()
	}
	return k
}

func tcpKey(src, dst string, sport, dport uint16) Key { return mkKey(protoTCP, src, dst, sport, dport) }
func udpKey(src, dst string, sport, dport uint16) Key { return mkKey(protoUDP, src, dst, sport, dport) }

// echoKey is an ICMP echo request's key: identifier in SrcPort.
func echoKey(src, dst string, id uint16) Key {
	k := mkKey(protoICMP, src, dst, id, 0)
	if k.Family == 6 {
		k.Proto = protoICMPv6
	}
	return k
}

// flow returns a copy of the live entry k belongs to.
func flow(t *Table, k Key) (entry, Dir, bool) {
	s := t.shardOf(&k)
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.index[k]
	if !ok {
		return entry{}, 0, false
	}
	return s.entries[v>>1], Dir(v & 1), true
}

// checkInvariants verifies the table's internal structure: every index
// entry points at a live slot holding that key in the right direction,
// every live slot is indexed, the unassured FIFO holds exactly the
// unassured entries in creation order, and the counters agree.
func checkInvariants(tb testing.TB, t *Table) {
	tb.Helper()
	var live int64
	srcCount := map[srcKey]int32{}
	for si := range t.shards {
		s := &t.shards[si]
		s.mu.Lock()
		inUse := 0
		unassured := map[uint32]bool{}
		for i := 1; i < len(s.entries); i++ {
			e := &s.entries[i]
			if e.flags&eInUse == 0 {
				continue
			}
			inUse++
			srcCount[sourceOf(&e.key)]++
			if t.shardOf(&e.key) != s {
				tb.Errorf("shard %d slot %d: key hashes to another shard", si, i)
			}
			if v, ok := s.index[e.key]; !ok || v != uint32(i)<<1 {
				tb.Errorf("shard %d slot %d: original key not indexed (%d, %v)", si, i, v, ok)
			}
			rk := replyKey(&e.key)
			if t.shardOf(&rk) != s {
				tb.Errorf("shard %d slot %d: reply key hashes to another shard", si, i)
			}
			if rk != e.key {
				if v, ok := s.index[rk]; !ok || v != uint32(i)<<1|1 {
					tb.Errorf("shard %d slot %d: reply key not indexed", si, i)
				}
			}
			if e.flags&eAssured == 0 {
				unassured[uint32(i)] = true
			}
		}
		for k, v := range s.index {
			slot := v >> 1
			if int(slot) >= len(s.entries) || s.entries[slot].flags&eInUse == 0 {
				tb.Errorf("shard %d: index %v -> dead slot %d", si, k, slot)
			}
		}
		if int64(inUse) != s.live.Load() {
			tb.Errorf("shard %d: %d entries in use, live=%d", si, inUse, s.live.Load())
		}
		live += int64(inUse)
		n, prevCreated, prev := 0, int64(math.MinInt64), uint32(0)
		for slot := s.head; slot != 0; slot = s.entries[slot].next {
			e := &s.entries[slot]
			if !unassured[slot] {
				tb.Errorf("shard %d: FIFO holds slot %d which is not a live unassured entry", si, slot)
				break
			}
			if e.prev != prev || e.created < prevCreated {
				tb.Errorf("shard %d: FIFO broken at slot %d", si, slot)
			}
			prev, prevCreated = slot, e.created
			n++
			if n > len(s.entries) {
				tb.Errorf("shard %d: FIFO cycle", si)
				break
			}
		}
		if n != len(unassured) || s.tail != prev {
			tb.Errorf("shard %d: FIFO has %d entries, %d unassured", si, n, len(unassured))
		}
		wantOldest := int64(math.MaxInt64)
		if s.head != 0 {
			wantOldest = s.entries[s.head].created
		}
		if s.oldest.Load() != wantOldest {
			tb.Errorf("shard %d: oldest=%d, head created %d", si, s.oldest.Load(), wantOldest)
		}
		s.mu.Unlock()
	}
	if c := t.count.Load(); c != live {
		tb.Errorf("count=%d, live entries %d", c, live)
	}
	if live > t.maxFlows {
		tb.Errorf("%d entries exceed max_flows %d", live, t.maxFlows)
	}
	got := map[srcKey]int32{}
	for i := range t.srcs {
		ss := &t.srcs[i]
		ss.mu.Lock()
		for k, n := range ss.n {
			got[k] = n
		}
		ss.mu.Unlock()
	}
	for k, n := range srcCount {
		if got[k] != n {
			tb.Errorf("source %v: counted %d, has %d flows", k, got[k], n)
		}
		if n > t.maxPerSource {
			tb.Errorf("source %v: %d flows exceed limit %d", k, n, t.maxPerSource)
		}
	}
	if len(got) != len(srcCount) {
		tb.Errorf("source table has %d sources, flows come from %d", len(got), len(srcCount))
	}
	st := t.Stats()
	if st.Insert != uint64(live)+st.EarlyDrop+st.Expired+st.Removed {
		tb.Errorf("insert=%d != live %d + early_drop %d + expired %d + removed %d",
			st.Insert, live, st.EarlyDrop, st.Expired, st.Removed)
	}
}
