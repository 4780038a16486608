package reassembly

import (
	"testing"
	"unsafe"
)

// TestOverheads keeps the per-datagram and per-fragment charges above
// what the records really take: a datagram and its map slot (key and
// pointer), and a span twice over for the slice's growth slack.
func TestOverheads(t *testing.T) {
	if got, want := int(unsafe.Sizeof(datagram{})+unsafe.Sizeof(key{})+unsafe.Sizeof(&datagram{})), datagramOverhead; got > want {
		t.Errorf("datagram record: got %d bytes; want at most datagramOverhead %d", got, want)
	}
	if got, want := int(2*unsafe.Sizeof(span{})), fragOverhead; got > want {
		t.Errorf("span: got %d bytes; want at most fragOverhead %d", got, want)
	}
}

// withID is o under another identification, so it is another datagram.
func withID(o orig, id uint32) orig {
	c := o
	c.pkt = append([]byte(nil), o.pkt...)
	c.id = id
	if !o.is6() {
		c.pkt[4], c.pkt[5] = byte(id>>8), byte(id)
		fixIPv4(c.pkt)
	}
	return c
}

// TestMemoryFlood floods a small budget with incomplete datagrams: the
// memory in use never exceeds it, the oldest are evicted first, and a
// datagram sent whole afterwards still reassembles.
func TestMemoryFlood(t *testing.T) {
	const budget = 64 << 10
	for _, base := range []orig{udp4(2000), udp6(2000)} {
		r, _ := newTest(budget)
		const n = 500
		var evictedAt []int // how many had been evicted after each datagram
		for i := range n {
			o := withID(base, uint32(i))
			if got, _ := feed(r, o.frag(0, 1000)); got[0] != heldOne {
				t.Fatalf("datagram %d: got %v; want held", i, got[0])
			}
			st := r.Stats()
			if st.MemoryInUse > budget {
				t.Fatalf("datagram %d: memory %d over the budget %d", i, st.MemoryInUse, budget)
			}
			evictedAt = append(evictedAt, int(st.DatagramsDropped[ReasonMemory]))
		}
		st := r.Stats()
		kept := st.DatagramsHeld
		if kept == 0 || kept+evictedAt[n-1] != n {
			t.Fatalf("got %d held and %d evicted; want %d in all, some held", kept, evictedAt[n-1], n)
		}
		// Oldest first: exactly the newest `kept` are still there, each
		// completing when its second fragment comes; the others start
		// over from that fragment.
		for i := n - kept; i < n; i++ {
			o := withID(base, uint32(i))
			got, done := feed(r, o.frag(1000, o.size()))
			if got[0] != complete {
				t.Fatalf("datagram %d of the newest %d: got %v; want complete", i, kept, got[0])
			}
			checkOriginal(t, done, o)
		}
		for i := range n - kept {
			o := withID(base, uint32(i))
			if got, _ := feed(r, o.frag(1000, o.size())); got[0] == complete {
				t.Fatalf("datagram %d, evicted: got complete", i)
			}
		}
		for i := 1; i < n; i++ {
			if evictedAt[i] < evictedAt[i-1] {
				t.Fatalf("evictions went down")
			}
		}
		// Whatever the flood left, a datagram sent whole still completes.
		fresh := withID(base, 1<<20)
		got, done := feed(r, fresh.split(1000)...)
		if got[1] != complete {
			t.Fatalf("fresh datagram after the flood: got %v; want complete", got)
		}
		checkOriginal(t, done, fresh)
		checkConserved(t, r.Stats())
	}
}

// TestMemoryTooBigAlone checks a datagram that cannot fit the budget by
// itself is refused without evicting the others.
func TestMemoryTooBigAlone(t *testing.T) {
	r, _ := newTest(8 << 10)
	small := udp4(2000)
	feed(r, small.frag(0, 1000))
	big := withID(udp4(20000), 7)
	got, _ := feed(r, big.frag(0, 9000))
	if got[0] != dropped(ReasonMemory) {
		t.Fatalf("got %v; want memory", got[0])
	}
	st := r.Stats()
	if st.DatagramsHeld != 1 || st.DatagramsDropped[ReasonMemory] != 0 {
		t.Errorf("got %d held, %d evicted; want 1, 0", st.DatagramsHeld, st.DatagramsDropped[ReasonMemory])
	}
	// A datagram can exceed what it may hold by its last fragment, which
	// is never held.
	big = withID(udp4(20000), 8)
	got, done := feed(r, big.frag(0, 4000), big.frag(4000, big.size()))
	if got[1] != complete {
		t.Fatalf("got %v; want held, complete", got)
	}
	checkOriginal(t, done, big)
}

// TestMemoryGrowth checks a datagram of many fragments keeps its charge
// within the budget while its buffer grows, and gives all of it back.
func TestMemoryGrowth(t *testing.T) {
	o := udp6(65535 - 8)
	fs := reversed(o.every(1232))
	r, _ := newTest(minMemory + 32<<10)
	for i, f := range fs[:len(fs)-1] {
		if got, _ := feed(r, f); got[0] != heldOne {
			t.Fatalf("fragment %d: got %v; want held", i, got[0])
		}
		if st := r.Stats(); st.MemoryInUse > minMemory+32<<10 {
			t.Fatalf("fragment %d: memory %d over the budget", i, st.MemoryInUse)
		}
	}
	got, done := feed(r, fs[len(fs)-1])
	if got[0] != complete {
		t.Fatalf("got %v; want complete", got[0])
	}
	checkOriginal(t, done, o)
	checkEmpty(t, r)
}
