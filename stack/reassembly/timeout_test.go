package reassembly

import (
	"testing"
	"time"
)

// TestTimeout checks an incomplete datagram is dropped Config.Timeout
// after its first fragment, by Expire or by the next Add in its shard,
// and that later fragments do not extend the deadline (Linux's timer runs
// from the queue's creation).
func TestTimeout(t *testing.T) {
	o := udp4(3000)
	fs := o.split(1480, 2960)
	t.Run("expire", func(t *testing.T) {
		r, clock := newTest(defaultMemory)
		feed(r, fs[0])
		clock.advance(29 * time.Second)
		feed(r, fs[1])
		r.Expire()
		if st := r.Stats(); st.FragmentsHeld != 2 {
			t.Fatalf("before the timeout: got %d held; want 2", st.FragmentsHeld)
		}
		clock.advance(time.Second)
		r.Expire()
		st := r.Stats()
		if st.DatagramsDropped[ReasonTimeout] != 1 || st.FragmentsDropped[ReasonTimeout] != 2 {
			t.Errorf("got %d datagrams, %d fragments timed out; want 1, 2", st.DatagramsDropped[ReasonTimeout], st.FragmentsDropped[ReasonTimeout])
		}
		checkEmpty(t, r)
	})
	t.Run("lazy", func(t *testing.T) {
		r, clock := newTest(defaultMemory)
		feed(r, fs[0], fs[1])
		clock.advance(30 * time.Second)
		// The last fragment alone now: the two before it are gone.
		got, _ := feed(r, fs[2])
		if got[0] != heldOne {
			t.Fatalf("got %v; want held", got[0])
		}
		st := r.Stats()
		if st.DatagramsDropped[ReasonTimeout] != 1 || st.FragmentsHeld != 1 {
			t.Errorf("got %d timed out, %d held; want 1, 1", st.DatagramsDropped[ReasonTimeout], st.FragmentsHeld)
		}
		got, done := feed(r, fs[0], fs[1])
		if got[1] != complete {
			t.Fatalf("the datagram sent again: got %v; want complete", got)
		}
		checkOriginal(t, done, o)
		checkEmpty(t, r)
	})
	t.Run("clock going back", func(t *testing.T) {
		// Two datagrams in one shard, the younger with the earlier
		// deadline: it is behind the head when it times out, and found
		// by its own lookup.
		r, clock := newTest(defaultMemory)
		older := o
		var f fragment
		parse(older.frag(0, 1480), &f)
		var younger orig
		for id := uint32(1); ; id++ {
			younger = withID(o, id)
			var g fragment
			parse(younger.frag(0, 1480), &g)
			if r.shardFor(&g.key) == r.shardFor(&f.key) {
				break
			}
		}
		feed(r, older.frag(0, 1480))
		clock.advance(-time.Hour)
		feed(r, younger.frag(0, 1480))
		clock.advance(30 * time.Second)
		got, _ := feed(r, younger.frag(1480, younger.size()))
		if got[0] != heldOne {
			t.Fatalf("got %v; want held, the first fragment timed out", got[0])
		}
		if st := r.Stats(); st.DatagramsDropped[ReasonTimeout] != 1 || st.DatagramsHeld != 2 {
			t.Errorf("got %d timed out, %d held; want 1, 2", st.DatagramsDropped[ReasonTimeout], st.DatagramsHeld)
		}
		clock.advance(time.Hour)
		r.Expire()
		checkEmpty(t, r)
	})
	t.Run("real clock", func(t *testing.T) {
		r := New(Config{}, nil)
		if got, _ := feed(r, fs...); got[2] != complete {
			t.Errorf("got %v; want complete", got)
		}
	})
}
