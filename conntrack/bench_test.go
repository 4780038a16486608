package conntrack

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
)

// benchKey is a distinct UDP key per i: sources spread over 198.18.0.0/15
// and ports so no source hits max_flows_per_source.
func benchKey(i uint32) Key {
	k := Key{Proto: protoUDP, Family: 4, SrcPort: uint16(i), DstPort: 53}
	binary.BigEndian.PutUint32(k.Src[:4], 198<<24|18<<16|(i>>16&0x1ff))
	binary.BigEndian.PutUint32(k.Dst[:4], 198<<24|19<<16|1)
	return k
}

func bigTable(tb testing.TB, n int) (*Table, []Key) {
	tab, _ := newTestTable(tb, func(c *Config) {
		c.MaxFlows = 2 * n
		c.MaxFlowsPerSource = 1 << 20
		c.MaxHalfOpenPerSource = 1 << 20
		c.MaxHalfOpen = 1
	})
	keys := make([]Key, n)
	for i := range keys {
		keys[i] = benchKey(uint32(i))
		if err := tab.Commit(&Packet{Key: keys[i], Len: 100}, Verdict{}); err != nil {
			tb.Fatal(err)
		}
	}
	return tab, keys
}

// BenchmarkTrackEstablished tracks one established flow, with the coarse
// clock Run keeps and with the precise clock (no Run).
func BenchmarkTrackEstablished(b *testing.B) {
	for _, coarse := range []bool{true, false} {
		name := "precise-clock"
		if coarse {
			name = "coarse-clock"
		}
		b.Run(name, func(b *testing.B) {
			tab := New(Config{}, Options{})
			if coarse {
				runTable(b, tab)
			}
			c := newConv(tab, tcpKey("198.18.0.1", "198.18.1.1", 40000, 80))
			c.side[0].wscale, c.side[1].wscale = 7, 7
			_ = tab.Commit(c.pkt(DirOriginal, fSYN, 0), Verdict{})
			c.send(DirReply, fSYNACK, 0)
			c.send(DirOriginal, fACK, 0)
			c.send(DirOriginal, fPSHACK, 1460)
			// The server's ACK of the data, over and over: full window
			// checks and updates on every packet.
			p := c.pkt(DirReply, fACK, 0)
			b.ReportAllocs()
			for b.Loop() {
				if r := tab.Track(p); r.State != StateEstablished {
					b.Fatal(r)
				}
			}
		})
	}
}

// runTable runs tab's sweeper and clock until the benchmark ends.
func runTable(b *testing.B, tab *Table) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { tab.Run(ctx); close(done) }()
	for tab.coarse.Load() == 0 {
		runtime.Gosched()
	}
	b.Cleanup(func() { cancel(); <-done })
}

// BenchmarkTrackEstablishedParallel tracks 4096 flows from every P.
func BenchmarkTrackEstablishedParallel(b *testing.B) {
	tab, keys := bigTable(b, 4096)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		p := &Packet{Len: 100}
		i := rand.Uint32()
		for pb.Next() {
			i++
			p.Key = keys[i%4096]
			tab.Track(p)
		}
	})
}

// BenchmarkLookupCold1M tracks packets of random flows in a 1M-flow table,
// so most lookups miss the CPU caches. Each key is built from its index
// as a packet's key is parsed from a header already in cache; loading it
// from a 40 MB array of keys would add a cache miss no packet has. The
// coarse clock is Run's, as in the gateway.
func BenchmarkLookupCold1M(b *testing.B) {
	if testing.Short() {
		b.Skip("builds a 1M-flow table")
	}
	const n = 1 << 20
	tab := New(Config{MaxFlows: 2 * n, MaxFlowsPerSource: n, MaxHalfOpenPerSource: n, MaxHalfOpen: 1}, Options{})
	for i := range uint32(n) {
		if err := tab.Commit(&Packet{Key: benchKey(i), Len: 100}, Verdict{}); err != nil {
			b.Fatal(err)
		}
	}
	runTable(b, tab)
	order := make([]uint32, n)
	for i, v := range rand.Perm(n) {
		order[i] = uint32(v)
	}
	p := &Packet{Len: 100}
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		p.Key = benchKey(order[i&(n-1)])
		if r := tab.Track(p); !r.Found {
			b.Fatal(r)
		}
		i++
	}
}

// BenchmarkNewFlowInsertExpire is the churn of a full table: every op is a
// new flow's Track miss plus Commit, which evicts the oldest unassured
// flow (64Ki-flow table), from all Ps at once.
func BenchmarkNewFlowInsertExpire(b *testing.B) {
	tab := New(Config{MaxFlows: 1 << 16, MaxFlowsPerSource: 1 << 30, MaxHalfOpenPerSource: 1 << 30, MaxHalfOpen: 1}, Options{})
	runTable(b, tab)
	var next atomic.Uint32
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		p := &Packet{Len: 100}
		for pb.Next() {
			p.Key = benchKey(next.Add(1))
			if r := tab.Track(p); r.State == StateNew {
				if err := tab.Commit(p, Verdict{}); err != nil {
					b.Error(err)
					return
				}
			}
		}
	})
	b.StopTimer()
	if tab.Len() > 1<<16 {
		b.Fatalf("Len %d", tab.Len())
	}
	var rebuilds uint64
	for i := range tab.shards {
		rebuilds += tab.shards[i].rebuilds
	}
	b.ReportMetric(float64(rebuilds)/float64(b.N), "rebuilds/op")
}

// BenchmarkSweep1M is one full sweeper pass over 1M live flows, nothing
// expiring: the steady-state cost of the background sweeper.
func BenchmarkSweep1M(b *testing.B) {
	if testing.Short() {
		b.Skip("builds a 1M-flow table")
	}
	tab, keys := bigTable(b, 1<<20)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		tab.sweepAll()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(keys)), "ns/flow")
}

func BenchmarkClock(b *testing.B) {
	for _, coarse := range []bool{true, false} {
		name := "precise"
		if coarse {
			name = "coarse"
		}
		b.Run(name, func(b *testing.B) {
			tab := New(Config{}, Options{})
			if coarse {
				runTable(b, tab)
			}
			var sink int64
			for b.Loop() {
				sink += tab.now()
			}
			_ = sink
		})
	}
}

// TestMemoryPerEntry reports heap bytes per tracked flow at 1M flows.
func TestMemoryPerEntry(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("1M flows; skipped under -short and -race")
	}
	const n = 1 << 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	// The keys are dropped at once: only the table's own memory counts.
	tab, _ := bigTable(t, n)
	runtime.GC()
	runtime.ReadMemStats(&after)
	perEntry := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("%.0f heap bytes per flow at %d flows (entry struct %d bytes)", perEntry, n, entrySize)
	if tab.Len() != n {
		t.Fatalf("Len %d", tab.Len())
	}
	// The budget: a million flows in 256 MiB, slots, control bytes, list
	// nodes and per-source counts included.
	if perEntry > maxBytesPerFlow {
		t.Errorf("%.0f heap bytes per flow; want at most %d", perEntry, maxBytesPerFlow)
	}
	runtime.KeepAlive(tab)
}

// maxBytesPerFlow is TestMemoryPerEntry's budget.
const maxBytesPerFlow = 256

// BenchmarkGCPause1M is a forced garbage collection with a live 1M-flow
// table: ns/op is the whole cycle (the table is pointer-free, so marking
// skips its entries); pause-ns is the median stop-the-world pause (both
// pauses of a cycle) and max-pause-ns the longest, which on a loaded VM
// mostly measures the host's scheduling.
func BenchmarkGCPause1M(b *testing.B) {
	if testing.Short() {
		b.Skip("builds a 1M-flow table")
	}
	for _, withTable := range []bool{false, true} {
		name := "empty-heap"
		if withTable {
			name = "1M-flows"
		}
		b.Run(name, func(b *testing.B) {
			var tab *Table
			if withTable {
				tab, _ = bigTable(b, 1<<20)
			}
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			b.ResetTimer()
			for b.Loop() {
				runtime.GC()
			}
			b.StopTimer()
			runtime.ReadMemStats(&after)
			var pauses []uint64
			for i := before.NumGC; i < after.NumGC && i-before.NumGC < 256; i++ {
				pauses = append(pauses, after.PauseNs[i%256])
			}
			slices.Sort(pauses)
			if len(pauses) > 0 {
				b.ReportMetric(float64(pauses[len(pauses)/2]), "pause-ns")
				b.ReportMetric(float64(pauses[len(pauses)-1]), "max-pause-ns")
			}
			b.ReportMetric(float64(after.HeapAlloc)/(1<<20), "heap-MiB")
			runtime.KeepAlive(tab)
		})
	}
}

// BenchmarkGrowShard is one growth of a shard holding 1/64 of a 1M-flow
// table (16,384 flows) and of a 16M-flow table: the longest a lookup in
// that shard waits for its lock on the way to that size; the other 63
// shards go on.
func BenchmarkGrowShard(b *testing.B) {
	for _, n := range []int{1 << 14, 1 << 18} {
		b.Run(fmt.Sprintf("flows=%d", n), func(b *testing.B) {
			if n > 1<<14 && testing.Short() {
				b.Skip("a 40 MB shard")
			}
			s := &shard{}
			for i := range uint32(n) {
				k := benchKey(i)
				e := entry{key: k, flags: eInUse, created: int64(i), deadline: 1 << 40}
				s.insert(&e, mix(uint64(i), 0x9e3779b97f4a7c15))
			}
			b.ReportAllocs()
			for b.Loop() {
				s.rebuild(s.live + 1)
			}
			b.ReportMetric(float64(s.nslots), "slots")
		})
	}
}
