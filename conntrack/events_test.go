package conntrack

import (
	"testing"
	"time"
)

func TestEvents(t *testing.T) {
	tab, clk := newTestTable(t, nil)
	sub := tab.Subscribe(64, EventAll)
	defer sub.Close()
	c := established(t, tab)
	c.send(DirOriginal, fFINACK, 0)
	k := udpKey("198.18.0.1", "198.18.1.1", 5000, 53)
	mustCommit(t, tab, &Packet{Key: k})
	clk.Advance(time.Minute)
	tab.sweepAll()

	var got []string
	for len(sub.C()) > 0 {
		ev := <-sub.C()
		s := ev.Type.String()
		if ev.Orig.Proto == protoTCP {
			s += "/tcp/" + ev.TCPState.String()
		} else {
			s += "/udp"
		}
		if ev.Type == EventDestroy {
			s += "/" + ev.Reason.String()
		}
		got = append(got, s)
		if ev.Orig.Proto == protoTCP && ev.Orig != testKey || ev.Reply() != replyKey(&ev.Orig) {
			t.Fatalf("event keys %+v", ev)
		}
	}
	want := []string{
		"new/tcp/SYN_SENT",
		"update/tcp/SYN_RECV",
		"update/tcp/ESTABLISHED", // assured
		"update/tcp/ESTABLISHED", // state change
		"update/tcp/FIN_WAIT",
		"new/udp",
		"destroy/udp/expired",
	}
	if len(got) != len(want) {
		t.Fatalf("events %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("events %q, want %q", got, want)
		}
	}
	if sub.Missed() != 0 {
		t.Fatalf("missed %d", sub.Missed())
	}
}

// TestEventsSlowSubscriber: a full buffer drops and counts events; the
// packet path goes on.
func TestEventsSlowSubscriber(t *testing.T) {
	tab, _ := newTestTable(t, func(c *Config) { c.MaxHalfOpenPerSource = 1000; c.MaxHalfOpen = 1 })
	sub := tab.Subscribe(2, EventNew)
	destroyed := tab.Subscribe(100, EventDestroy)
	for i := range 10 {
		mustCommit(t, tab, &Packet{Key: udpKey("198.18.0.1", "198.18.1.1", uint16(i), 53)})
	}
	if len(sub.C()) != 2 || sub.Missed() != 8 {
		t.Fatalf("buffered %d, missed %d; want 2 and 8", len(sub.C()), sub.Missed())
	}
	if len(destroyed.C()) != 0 {
		t.Fatal("destroy subscriber got new events")
	}
	sub.Close()
	sub.Close() // idempotent
	for range sub.C() {
	}
	tab.Delete(udpKey("198.18.0.1", "198.18.1.1", 1, 53))
	if ev := <-destroyed.C(); ev.Type != EventDestroy || ev.Reason != DestroyDeleted {
		t.Fatalf("got %+v", ev)
	}
	destroyed.Close()
	if tab.ev.active() {
		t.Fatal("hub still active after every subscriber closed")
	}
	// Emitting after Close must not panic.
	mustCommit(t, tab, &Packet{Key: udpKey("198.18.0.1", "198.18.1.1", 99, 53)})
}

// TestEventsConcurrentClose closes subscriptions while packets emit.
func TestEventsConcurrentClose(t *testing.T) {
	tab, _ := newTestTable(t, func(c *Config) { c.MaxHalfOpenPerSource = 1 << 20; c.MaxHalfOpen = 1; c.MaxFlowsPerSource = 1 << 20 })
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 20000 {
			_ = tab.Commit(&Packet{Key: benchKey(uint32(i))}, Verdict{})
		}
	}()
	for range 200 {
		s := tab.Subscribe(1, EventAll)
		s.Close()
	}
	<-done
}

func TestTrackAllocsWithSubscriber(t *testing.T) {
	tab, _ := newTestTable(t, nil)
	sub := tab.Subscribe(1, EventAll)
	defer sub.Close()
	c := established(t, tab)
	p := c.pkt(DirOriginal, fPSHACK, 100)
	if n := testing.AllocsPerRun(1000, func() { tab.Track(p) }); n != 0 {
		t.Fatalf("%v allocs per Track", n)
	}
}
