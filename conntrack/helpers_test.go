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
	h := t.hash(&k)
	s := t.shardFor(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	slot, dir, ok := s.find(&k, h)
	if !ok {
		return entry{}, 0, false
	}
	return *s.at(slot), dir, true
}

// checkInvariants verifies the table's internal structure: every index
// word points at a live slot with that hash, every live slot is indexed
// once and found by both its keys, the unassured lists hold exactly the
// unassured entries (unreplied ones in creation order), chunk deadline
// bounds hold, and the counters agree.
func checkInvariants(tb testing.TB, t *Table) {
	tb.Helper()
	var live, half int64
	perSrc := map[srcKey]srcCount{}
	for si := range t.shards {
		s := &t.shards[si]
		s.mu.Lock()
		inUse := 0
		onList := [2]map[uint32]bool{{}, {}}
		for i := uint32(1); i <= s.nslots; i++ {
			c, e := s.ctrl[i], s.at(i)
			if (c >= ctrlFull) != (e.flags&eInUse != 0) {
				tb.Errorf("shard %d slot %d: control byte %#x, entry flags %#x", si, i, c, e.flags)
			}
			if c < ctrlFull {
				if *e != (entry{}) {
					tb.Errorf("shard %d slot %d: free slot not zeroed", si, i)
				}
				continue
			}
			inUse++
			sc := perSrc[sourceOf(&e.key)]
			if e.flags&eSourceFree == 0 {
				sc.flows++
			}
			if e.flags&eSeenReply == 0 {
				sc.half++
				half++
			}
			if sc != (srcCount{}) {
				perSrc[sourceOf(&e.key)] = sc
			}
			h := t.hash(&e.key)
			if t.shardFor(h) != s || ctrlTag(h) != c || uint32(h) != s.hash32[i] {
				tb.Errorf("shard %d slot %d: key hashes elsewhere", si, i)
			}
			if slot, dir, ok := s.find(&e.key, h); !ok || slot != i || dir != DirOriginal {
				tb.Errorf("shard %d slot %d: original key finds %d %v %v", si, i, slot, dir, ok)
			}
			rk := replyKey(&e.key)
			if rh := t.hash(&rk); rh != h {
				tb.Errorf("shard %d slot %d: reply key hashes differently", si, i)
			}
			if rk != e.key {
				if slot, dir, ok := s.find(&rk, h); !ok || slot != i || dir != DirReply {
					tb.Errorf("shard %d slot %d: reply key finds %d %v %v", si, i, slot, dir, ok)
				}
			}
			if l := listOf(e); l >= 0 {
				onList[l][i] = true
				if e.node == 0 || int(e.node) >= len(s.nodes) || s.nodes[e.node].slot != i {
					tb.Errorf("shard %d slot %d: list node %d does not point back", si, i, e.node)
				}
			} else if e.node != 0 {
				tb.Errorf("shard %d slot %d: assured flow holds list node %d", si, i, e.node)
			}
			if e.deadline < s.minDeadline[i>>chunkBits] {
				tb.Errorf("shard %d slot %d: deadline below its chunk's bound", si, i)
			}
		}
		if s.nslots > 0 && uint64(s.live)*8 > uint64(s.nslots)*maxLoad8 {
			tb.Errorf("shard %d: %d flows in %d slots", si, s.live, s.nslots)
		}
		for k := uint32(1); s.nslots > 0 && k <= group; k++ {
			if s.ctrl[s.nslots+k] != s.ctrl[k] {
				tb.Errorf("shard %d: control byte copy %d differs", si, k)
			}
		}
		if s.nslots > 0 && s.ctrl[0] != ctrlEmpty || s.nslots > 0 && *s.at(0) != (entry{}) {
			tb.Errorf("shard %d: sentinel slot touched", si)
		}
		if inUse != s.live {
			tb.Errorf("shard %d: %d entries in use, live=%d", si, inUse, s.live)
		}
		live += int64(inUse)
		for l := range 2 {
			n, prevCreated, prev := 0, int64(math.MinInt64), uint32(0)
			for node := s.head[l]; node != 0; node = s.nodes[node].next {
				slot := s.nodes[node].slot
				e := s.at(slot)
				if !onList[l][slot] || e.node != node {
					tb.Errorf("shard %d: list %d holds slot %d which does not belong there", si, l, slot)
					break
				}
				since := s.nodes[node].since
				if s.nodes[node].prev != prev || since < prevCreated || (l == listUnreplied && since != e.created) {
					tb.Errorf("shard %d: list %d broken at slot %d", si, l, slot)
				}
				prev, prevCreated = node, since
				n++
				if n > int(s.nslots) {
					tb.Errorf("shard %d: list %d cycle", si, l)
					break
				}
			}
			if n != len(onList[l]) || s.tail[l] != prev {
				tb.Errorf("shard %d: list %d has %d entries, want %d", si, l, n, len(onList[l]))
			}
			wantOldest := int64(math.MaxInt64)
			if s.head[l] != 0 {
				wantOldest = s.nodes[s.head[l]].since
			}
			if s.oldest[l].Load() != wantOldest {
				tb.Errorf("shard %d: oldest[%d]=%d, head created %d", si, l, s.oldest[l].Load(), wantOldest)
			}
		}
		s.mu.Unlock()
	}
	if c := t.count.Load(); c != live {
		tb.Errorf("count=%d, live entries %d", c, live)
	}
	if h := t.halfOpen.Load(); h != half {
		tb.Errorf("halfOpen=%d, unreplied entries %d", h, half)
	}
	if live > t.maxFlows {
		tb.Errorf("%d entries exceed max_flows %d", live, t.maxFlows)
	}
	if half > t.maxHalfOpen {
		tb.Errorf("%d unreplied entries exceed max_half_open %d", half, t.maxHalfOpen)
	}
	got := map[srcKey]srcCount{}
	for i := range t.srcs {
		ss := &t.srcs[i]
		ss.mu.Lock()
		for k, n := range ss.n {
			got[k] = n
		}
		ss.mu.Unlock()
	}
	for k, n := range perSrc {
		if got[k] != n {
			tb.Errorf("source %v: counted %+v, has %+v", k, got[k], n)
		}
		if n.flows > t.maxPerSource || n.half > t.maxHalfPerSrc {
			tb.Errorf("source %v: %+v exceeds limits %d/%d", k, n, t.maxPerSource, t.maxHalfPerSrc)
		}
	}
	if len(got) != len(perSrc) {
		tb.Errorf("source table has %d sources, flows come from %d", len(got), len(perSrc))
	}
	st := t.Stats()
	if st.Insert != uint64(live)+st.EarlyDrop+st.Expired+st.Removed {
		tb.Errorf("insert=%d != live %d + early_drop %d + expired %d + removed %d",
			st.Insert, live, st.EarlyDrop, st.Expired, st.Removed)
	}
}
