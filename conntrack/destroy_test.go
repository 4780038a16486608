package conntrack

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// destroyLog records OnDestroy calls.
type destroyLog struct {
	mu  sync.Mutex // guards got
	got []string
}

func (d *destroyLog) record(k Key, why DestroyReason) {
	d.mu.Lock()
	d.got = append(d.got, fmt.Sprintf("%d:%d %s", k.SrcPort, k.DstPort, why))
	d.mu.Unlock()
}

func (d *destroyLog) take() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := d.got
	d.got = nil
	return out
}

func newDestroyTable(t *testing.T, mutate func(*Config)) (*Table, *fakeClock, *destroyLog) {
	t.Helper()
	var cfg Config
	cfg.Defaults()
	if mutate != nil {
		mutate(&cfg)
	}
	d := &destroyLog{}
	clk := &fakeClock{}
	return New(cfg, Options{Now: clk.Now, OnDestroy: d.record}), clk, d
}

// TestOnDestroyEveryPath checks that each way an entry can leave the table
// reports it exactly once, with its original key and reason, and that
// nothing else does.
func TestOnDestroyEveryPath(t *testing.T) {
	tab, clk, d := newDestroyTable(t, func(c *Config) { c.MaxFlows = 2; c.MaxHalfOpen = 1 })
	udp := func(port uint16) Key { return udpKey("198.18.0.1", "198.18.1.1", port, 53) }

	mustCommit(t, tab, &Packet{Key: udp(1), Len: 40})
	tab.Track(&Packet{Key: replyKey(ptr(udp(1))), Len: 40}) // replied: not evictable first
	if got := d.take(); len(got) != 0 {
		t.Fatalf("commit and reply destroyed %v, want nothing", got)
	}

	// Delete through the reply key reports the original key.
	rk := replyKey(ptr(udp(1)))
	if !tab.Delete(rk) {
		t.Fatal("Delete: flow not found")
	}
	if got, want := d.take(), []string{"1:53 deleted"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Delete: got %v; want %v", got, want)
	}

	// The table (2 flows) is full: a new flow evicts the oldest
	// unreplied one.
	mustCommit(t, tab, &Packet{Key: udp(2), Len: 40})
	clk.Advance(time.Millisecond)
	mustCommit(t, tab, &Packet{Key: udp(5), Len: 40})
	clk.Advance(time.Millisecond)
	mustCommit(t, tab, &Packet{Key: udp(3), Len: 40})
	if got, want := d.take(), []string{"2:53 evicted"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("eviction: got %v; want %v", got, want)
	}
	if !tab.Delete(udp(5)) {
		t.Fatal("Delete 5: not found")
	}
	d.take()

	// Expiry found by a lookup.
	clk.Advance(31 * time.Second)
	if r := tab.Track(&Packet{Key: udp(3), Len: 40}); r.Found {
		t.Fatalf("expired flow still found: %+v", r)
	}
	if got, want := d.take(), []string{"3:53 expired"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("lazy expiry: got %v; want %v", got, want)
	}

	// Expiry found by the sweeper.
	mustCommit(t, tab, &Packet{Key: udp(4), Len: 40})
	clk.Advance(31 * time.Second)
	tab.sweepAll()
	if got, want := d.take(), []string{"4:53 expired"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("sweep: got %v; want %v", got, want)
	}
	checkInvariants(t, tab)
	if tab.Len() != 0 {
		t.Fatalf("table holds %d flows, want 0", tab.Len())
	}
}

// TestOnDestroyTCPClose covers the TCP-only paths: an RST before any reply
// removes the flow, and a SYN reopening a closed connection replaces it
// (the old entry is reported before the new one exists).
func TestOnDestroyTCPClose(t *testing.T) {
	tab, _, d := newDestroyTable(t, nil)
	k := tcpKey("198.18.0.1", "198.18.1.1", 40000, 80)
	c := openConv(t, tab, k)
	tab.Track(c.pkt(DirOriginal, fRST, 0))
	if got, want := d.take(), []string{"40000:80 closed"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("RST before reply: got %v; want %v", got, want)
	}

	c = openConv(t, tab, k)
	c.play(t, seq(handshake, []step{{dir: DirOriginal, flags: fRST | fACK, want: StateEstablished, tcp: TCPClose, assured: true}}))
	if got := d.take(); len(got) != 0 {
		t.Fatalf("RST of an established flow destroyed %v; want it kept in CLOSE", got)
	}
	syn := &Packet{Key: k, TCPFlags: fSYN, Seq: 9000, Window: 64240}
	if err := tab.Commit(syn, Verdict{Action: 1}); err != nil {
		t.Fatalf("reopening Commit: %v", err)
	}
	if got, want := d.take(), []string{"40000:80 closed"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("reopen: got %v; want %v", got, want)
	}
	if e, _, ok := flow(tab, k); !ok || e.tcp != TCPSynSent {
		t.Fatalf("after reopen: %+v found=%v, want a new SYN_SENT entry", e.tcp, ok)
	}
}

// TestOnDestroyRefusedCommit checks that a Commit refused for lack of room
// reports nothing: no entry was made, and none left.
func TestOnDestroyRefusedCommit(t *testing.T) {
	tab, _, d := newDestroyTable(t, func(c *Config) { c.MaxFlowsPerSource = 1 })
	mustCommit(t, tab, &Packet{Key: udpKey("198.18.0.1", "198.18.1.1", 1, 53), Len: 40})
	err := tab.Commit(&Packet{Key: udpKey("198.18.0.1", "198.18.1.1", 2, 53), Len: 40}, Verdict{})
	if !errors.Is(err, ErrSourceLimit) {
		t.Fatalf("second flow: %v, want ErrSourceLimit", err)
	}
	if got := d.take(); len(got) != 0 {
		t.Fatalf("refused commit destroyed %v, want nothing", got)
	}
}

func ptr(k Key) *Key { return &k }
