package conntrack

import (
	"errors"
	"fmt"
	"github.com/tungate/tungate/internal/units"
	"strings"
	"testing"
	"time"
)

// TestHalfOpenShare: unreplied flows may hold max_half_open of the
// table; the next one evicts the oldest unreplied flow, never a replied
// or assured one.
func TestHalfOpenShare(t *testing.T) {
	tab, clk := newTestTable(t, func(c *Config) { c.MaxFlows = 8; c.MaxHalfOpen = 0.5 })
	keys := make([]Key, 10)
	for i := range keys {
		keys[i] = udpKey(fmt.Sprintf("198.18.0.%d", i+1), "198.18.1.1", 5000, 53)
	}
	open := func(i int) {
		t.Helper()
		clk.Advance(time.Millisecond)
		if err := tab.Commit(&Packet{Key: keys[i]}, Verdict{}); err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
	}
	reply := func(i int) {
		rk := replyKey(&keys[i])
		if r := tab.Track(&Packet{Key: rk}); !r.Found {
			t.Fatalf("reply %d: %+v", i, r)
		}
	}
	present := func() (out []int) {
		for i, k := range keys {
			if _, _, ok := flow(tab, k); ok {
				out = append(out, i)
			}
		}
		return out
	}
	for i := range 4 {
		open(i)
	}
	reply(1) // 1 is no longer half-open
	if tab.HalfOpen() != 3 {
		t.Fatalf("half-open %d", tab.HalfOpen())
	}
	open(4) // 4 unreplied: at the limit
	for _, s := range []struct {
		open int
		want []int
	}{
		{5, []int{1, 2, 3, 4, 5}}, // 0 was the oldest unreplied
		{6, []int{1, 3, 4, 5, 6}}, // then 2; 1 replied stays
	} {
		open(s.open)
		if got := present(); fmt.Sprint(got) != fmt.Sprint(s.want) {
			t.Fatalf("after %d: %v, want %v", s.open, got, s.want)
		}
		checkInvariants(t, tab)
	}
	if st := tab.Stats(); st.EarlyDrop != 2 || st.InsertFailed != 0 {
		t.Fatalf("stats %v", st)
	}
}

// TestEarlyDropPrefersUnreplied: a full table evicts the oldest unreplied
// flow before an older replied one.
func TestEarlyDropPrefersUnreplied(t *testing.T) {
	tab, clk := newTestTable(t, func(c *Config) { c.MaxFlows = 3; c.MaxHalfOpen = 1 })
	keys := make([]Key, 4)
	for i := range keys {
		keys[i] = udpKey(fmt.Sprintf("198.18.0.%d", i+1), "198.18.1.1", 5000, 53)
		clk.Advance(time.Millisecond)
		if err := tab.Commit(&Packet{Key: keys[i]}, Verdict{}); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			rk := replyKey(&keys[0])
			tab.Track(&Packet{Key: rk})
		}
	}
	if _, _, ok := flow(tab, keys[0]); !ok {
		t.Fatal("the replied flow was evicted before an unreplied one")
	}
	if _, _, ok := flow(tab, keys[1]); ok {
		t.Fatal("the oldest unreplied flow survived")
	}
	checkInvariants(t, tab)
}

func TestHalfOpenPerSource(t *testing.T) {
	tab, _ := newTestTable(t, func(c *Config) { c.MaxHalfOpenPerSource = 2 })
	k := func(port uint16) Key { return tcpKey("198.18.0.1", "198.18.1.1", port, 80) }
	for _, port := range []uint16{1, 2} {
		if err := tab.Commit(&Packet{Key: k(port), TCPFlags: fSYN}, Verdict{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := tab.Commit(&Packet{Key: k(3), TCPFlags: fSYN}, Verdict{}); !errors.Is(err, ErrHalfOpenLimit) {
		t.Fatalf("third half-open: %v, want ErrHalfOpenLimit", err)
	}
	// Another source is not affected.
	if err := tab.Commit(&Packet{Key: tcpKey("198.18.0.2", "198.18.1.1", 3, 80), TCPFlags: fSYN}, Verdict{}); err != nil {
		t.Fatal(err)
	}
	// Once the server answers one, the source may open another.
	rk := replyKey(&[]Key{k(1)}[0])
	if r := tab.Track(&Packet{Key: rk, TCPFlags: fSYNACK, Ack: 1}); r.State != StateEstablished {
		t.Fatalf("SYN/ACK: %+v", r)
	}
	if err := tab.Commit(&Packet{Key: k(3), TCPFlags: fSYN}, Verdict{}); err != nil {
		t.Fatalf("after a reply: %v", err)
	}
	if st := tab.Stats(); st.HalfOpenLimit != 1 || st.InsertFailed != 1 {
		t.Fatalf("stats %v", st)
	}
	checkInvariants(t, tab)
}

// TestSynFloodKeepsAssured: a flood of SYNs from many sources into a full
// table never evicts an assured connection and never exceeds the limits.
func TestSynFloodKeepsAssured(t *testing.T) {
	tab, _ := newTestTable(t, func(c *Config) { c.MaxFlows = 64 })
	c := established(t, tab)
	for i := range 5000 {
		k := tcpKey(fmt.Sprintf("198.18.%d.%d", 2+i/250, 1+i%250), "198.18.1.1", uint16(i), 80)
		if err := tab.Commit(&Packet{Key: k, TCPFlags: fSYN}, Verdict{}); err != nil {
			t.Fatalf("SYN %d: %v", i, err)
		}
	}
	if r := c.send(DirOriginal, fPSHACK, 10); r.State != StateEstablished || !r.Found {
		t.Fatalf("assured flow after the flood: %+v", r)
	}
	if h := tab.HalfOpen(); h > 16 {
		t.Fatalf("half-open %d exceeds a quarter of 64", h)
	}
	checkInvariants(t, tab)
}

// TestUDPAssured: a UDP flow becomes a stream (assured, 120s) only when it
// is replied and still active 2s after creation.
func TestUDPAssured(t *testing.T) {
	tab, clk := newTestTable(t, nil)
	k := udpKey("198.18.0.1", "198.18.1.1", 5000, 53)
	rk := replyKey(&k)
	mustCommit(t, tab, &Packet{Key: k})
	left := func() time.Duration {
		e, _, _ := flow(tab, k)
		return time.Duration(e.deadline - int64(clk.Now().Sub(clockBase)))
	}
	tab.Track(&Packet{Key: rk})
	if e, _, _ := flow(tab, k); e.flags&eAssured != 0 || left() != 30*time.Second {
		t.Fatalf("replied at once: assured=%v left %v", e.flags&eAssured != 0, left())
	}
	clk.Advance(2100 * time.Millisecond)
	tab.Track(&Packet{Key: k})
	if e, _, _ := flow(tab, k); e.flags&eAssured == 0 || left() != 120*time.Second {
		t.Fatalf("active after 2s: assured=%v left %v", e.flags&eAssured != 0, left())
	}
	// Unreplied flows never become streams.
	k2 := udpKey("198.18.0.1", "198.18.1.1", 5001, 53)
	mustCommit(t, tab, &Packet{Key: k2})
	clk.Advance(3 * time.Second)
	tab.Track(&Packet{Key: k2})
	if e, _, _ := flow(tab, k2); e.flags&eAssured != 0 {
		t.Fatal("unreplied flow assured")
	}
	checkInvariants(t, tab)
}

// TestEarlyDropRepliedByReplyTime: among replied, unassured flows the one
// answered longest ago goes first, whatever the order of creation.
func TestEarlyDropRepliedByReplyTime(t *testing.T) {
	tab, clk := newTestTable(t, func(c *Config) { c.MaxFlows = 2; c.MaxHalfOpen = 1 })
	a := udpKey("198.18.0.1", "198.18.1.1", 5000, 53)
	b := udpKey("198.18.0.2", "198.18.1.1", 5000, 53)
	for _, k := range []Key{a, b} {
		clk.Advance(time.Millisecond)
		mustCommit(t, tab, &Packet{Key: k})
	}
	for _, k := range []Key{b, a} { // b (the younger) is answered first
		clk.Advance(time.Millisecond)
		rk := replyKey(&k)
		tab.Track(&Packet{Key: rk})
	}
	clk.Advance(time.Millisecond)
	mustCommit(t, tab, &Packet{Key: udpKey("198.18.0.3", "198.18.1.1", 5000, 53)})
	if _, _, ok := flow(tab, b); ok {
		t.Fatal("the flow answered first survived")
	}
	if _, _, ok := flow(tab, a); !ok {
		t.Fatal("the flow answered last was evicted")
	}
	checkInvariants(t, tab)
}

func TestTimeoutBounds(t *testing.T) {
	c := Config{}
	c.Defaults()
	c.Timeouts.UDP = units.Duration(3651 * 24 * time.Hour)
	c.Timeouts.ICMP = 0
	errs := c.Validate()
	got := errs.Error()
	for _, want := range []string{"udp", "3650d", "icmp", "positive"} {
		if !strings.Contains(got, want) {
			t.Errorf("Validate: %q lacks %q", got, want)
		}
	}
}
