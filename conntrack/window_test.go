package conntrack

import (
	"testing"
	"time"

	"github.com/tungate/tungate/internal/units"
)

var testKey = tcpKey("198.18.0.1", "198.18.1.1", 40000, 80)

// established opens testKey and completes the handshake.
func established(t *testing.T, tab *Table) *conv {
	t.Helper()
	return runTCP(t, tab, testKey, handshake)
}

// entryOf returns testKey's entry, failing when it is gone.
func entryOf(t *testing.T, tab *Table) entry {
	t.Helper()
	e, _, ok := flow(tab, testKey)
	if !ok {
		t.Fatal("entry gone")
	}
	return e
}

// sameState compares two copies of an entry ignoring the traffic counters.
func sameState(a, b entry) bool {
	a.packets, a.bytes, b.packets, b.bytes = [2]uint64{}, [2]uint64{}, [2]uint64{}, [2]uint64{}
	return a == b
}

// TestTCPWindowChecks plays one adversarial segment on an established
// connection (after the client sent 1000 bytes the server acknowledged)
// and checks the outcome of the reference table (§4.2): INVALID or
// PASS-NOSTATE, the entry untouched either way.
func TestTCPWindowChecks(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *conv, p *Packet)
		want   CtState
		keep   bool // the entry must be unchanged (besides counters)
	}{
		{"in window", func(c *conv, p *Packet) {}, StateEstablished, false},
		{"seq far beyond the receiver window", func(c *conv, p *Packet) { p.Seq += 10 * 65160 }, StateInvalid, true},
		{"a few bytes over the window", func(c *conv, p *Packet) { p.Seq += 65160 + 10 }, StateEstablished, true},
		{"retransmission within the window", func(c *conv, p *Packet) { p.Seq -= 1000 }, StateEstablished, false},
		{"retransmission of data acknowledged a window ago", func(c *conv, p *Packet) { p.Seq -= 100000 }, StateEstablished, true},
		{"ack of data never sent", func(c *conv, p *Packet) { p.Ack += 5000 }, StateInvalid, true},
		{"very old ack", func(c *conv, p *Packet) { p.Ack -= 200000 }, StateEstablished, true},
		{"SACK beyond what was sent", func(c *conv, p *Packet) { p.SACKEdge = p.Ack + 5000 }, StateInvalid, true},
		{"SACK within what was sent", func(c *conv, p *Packet) { p.SACKEdge = p.Ack }, StateEstablished, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tab, _ := newTestTable(t, nil)
			c := established(t, tab)
			if r := c.send(DirOriginal, fPSHACK, 1000); r.State != StateEstablished {
				t.Fatalf("data: %+v", r)
			}
			if r := c.send(DirReply, fACK, 0); r.State != StateEstablished {
				t.Fatalf("ack: %+v", r)
			}
			before := entryOf(t, tab)
			st := tab.Stats()
			p := c.pkt(DirOriginal, fPSHACK, 100)
			tc.mutate(c, p)
			r := tab.Track(p)
			if r.State != tc.want || !r.Found {
				t.Fatalf("got %+v, want %v", r, tc.want)
			}
			after := entryOf(t, tab)
			if tc.keep && !sameState(before, after) {
				t.Fatalf("state changed:\n%+v\n%+v", before.conn, after.conn)
			}
			if !tc.keep && sameState(before, after) {
				t.Fatal("accepted segment did not move the window")
			}
			st2 := tab.Stats()
			if tc.want == StateInvalid && st2.Invalid != st.Invalid+1 {
				t.Fatalf("invalid counter %d -> %d", st.Invalid, st2.Invalid)
			}
			if tc.want == StateEstablished && tc.keep && st2.Ignore != st.Ignore+1 {
				t.Fatalf("ignore counter %d -> %d", st.Ignore, st2.Ignore)
			}
			checkInvariants(t, tab)
		})
	}
}

// TestTCPWindowScale checks that windows are scaled only when both SYNs
// offer the option, capped at 14, and that without parsed options the
// connection is tracked liberally.
func TestTCPWindowScale(t *testing.T) {
	for _, tc := range []struct {
		name       string
		cli, srv   int8
		opts       bool
		offset     uint32 // a 100-byte segment this far beyond the client's next byte
		want       CtState
		wantScales [2]uint8
	}{
		{"both scale 7: large window", 7, 7, true, 100000, StateEstablished, [2]uint8{7, 7}},
		{"server without option: unscaled", 7, -1, true, 100000, StateInvalid, [2]uint8{0, 0}},
		{"scale above 14 capped", 20, 20, true, 100000, StateEstablished, [2]uint8{14, 14}},
		{"options not parsed: liberal", 0, 0, false, 1 << 24, StateEstablished, [2]uint8{0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tab, _ := newTestTable(t, nil)
			c := newConv(tab, testKey)
			c.side[0].wscale, c.side[1].wscale = tc.cli, tc.srv
			c.side[1].win = 16384 // scaled by 7: 2 MiB
			syn := c.pkt(DirOriginal, fSYN, 0)
			syn.TCPOpts = tc.opts
			if err := tab.Commit(syn, Verdict{}); err != nil {
				t.Fatal(err)
			}
			sa := c.pkt(DirReply, fSYNACK, 0)
			sa.TCPOpts = tc.opts
			if r := tab.Track(sa); r.State != StateEstablished {
				t.Fatalf("SYN/ACK %+v", r)
			}
			if r := c.send(DirOriginal, fACK, 0); r.State != StateEstablished {
				t.Fatalf("ACK %+v", r)
			}
			e := entryOf(t, tab)
			if got := [2]uint8{e.conn.side[0].scale, e.conn.side[1].scale}; got != tc.wantScales {
				t.Fatalf("scales %v, want %v", got, tc.wantScales)
			}
			// The server's ACK of the handshake advertises the window
			// again, now scaled.
			c.send(DirReply, fACK, 0)
			p := c.pkt(DirOriginal, fPSHACK, 100)
			p.Seq += tc.offset
			if r := tab.Track(p); r.State != tc.want {
				t.Fatalf("segment at +%d: %v, want %v", tc.offset, r.State, tc.want)
			}
		})
	}
}

func TestTCPRST(t *testing.T) {
	tests := []struct {
		name    string
		dir     Dir
		flags   uint8
		mutate  func(c *conv, p *Packet)
		want    CtState
		state   TCPState
		timeout time.Duration // deadline afterwards; 0 = unchanged
	}{
		{"exact", DirReply, fRST, func(c *conv, p *Packet) {}, StateEstablished, TCPClose, 10 * time.Second},
		{"exact with ACK", DirOriginal, fRSTACK, func(c *conv, p *Packet) {}, StateEstablished, TCPClose, 10 * time.Second},
		{"before the last acknowledged byte", DirReply, fRST, func(c *conv, p *Packet) { p.Seq -= 10 }, StateInvalid, TCPEstablished, 0},
		{"in window, inexact", DirReply, fRST, func(c *conv, p *Packet) { p.Seq += 500 }, StateEstablished, TCPEstablished, 10 * time.Second},
		{"far out of window", DirReply, fRST, func(c *conv, p *Packet) { p.Seq += 1 << 30 }, StateInvalid, TCPEstablished, 0},
		{"forged, ack 0, random seq", DirReply, fRSTACK, func(c *conv, p *Packet) { p.Ack, p.Seq = 0, 0x12345678 }, StateInvalid, TCPEstablished, 0},
		{"ack 0 but exact seq", DirReply, fRSTACK, func(c *conv, p *Packet) { p.Ack = 0 }, StateEstablished, TCPClose, 10 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tab, clk := newTestTable(t, nil)
			c := established(t, tab)
			// The client sends data the server has not acknowledged yet,
			// so the server's "exact" RST is at its own next byte and the
			// window leaves room for inexact ones.
			c.send(DirReply, fPSHACK, 100)
			c.send(DirOriginal, fACK, 0)
			clk.Advance(time.Second)
			before := entryOf(t, tab)
			p := c.pkt(tc.dir, tc.flags, 0)
			tc.mutate(c, p)
			r := tab.Track(p)
			if r.State != tc.want {
				t.Fatalf("got %+v, want %v", r, tc.want)
			}
			after := entryOf(t, tab)
			if after.tcp != tc.state {
				t.Fatalf("state %v, want %v", after.tcp, tc.state)
			}
			now := int64(clk.Now().Sub(clockBase))
			if tc.timeout == 0 && after.deadline != before.deadline {
				t.Fatalf("deadline moved by %v", time.Duration(after.deadline-before.deadline))
			}
			if tc.timeout != 0 && after.deadline-now != int64(tc.timeout) {
				t.Fatalf("timeout %v, want %v", time.Duration(after.deadline-now), tc.timeout)
			}
			checkInvariants(t, tab)
		})
	}
}

// TestTCPRSTTrain: an RST at the end of the sender's last segment closes
// even when the peer has not acknowledged that segment (foo:1, foo:2).
func TestTCPRSTTrain(t *testing.T) {
	tab, _ := newTestTable(t, nil)
	c := established(t, tab)
	c.send(DirReply, fPSHACK, 100)
	if r := c.send(DirReply, fRST, 0); r.State != StateEstablished {
		t.Fatalf("RST: %+v", r)
	}
	if e := entryOf(t, tab); e.tcp != TCPClose {
		t.Fatalf("state %v, want CLOSE", e.tcp)
	}
}

func TestTCPRSTInSynSent(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags uint8
		ack   func(c *conv) uint32
		want  CtState
		gone  bool
	}{
		{"RST|ACK acknowledging the SYN", fRSTACK, func(c *conv) uint32 { return c.side[0].nxt }, StateEstablished, true},
		{"RST|ACK with a wrong ack", fRSTACK, func(c *conv) uint32 { return c.side[0].nxt + 1 }, StateInvalid, false},
		{"RST|ACK with ack 0", fRSTACK, func(c *conv) uint32 { return 0 }, StateInvalid, false},
		{"bare RST", fRST, func(c *conv) uint32 { return 0 }, StateInvalid, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tab, _ := newTestTable(t, nil)
			c := openConv(t, tab, testKey)
			p := c.pkt(DirReply, tc.flags, 0)
			p.Ack = tc.ack(c)
			if r := tab.Track(p); r.State != tc.want {
				t.Fatalf("got %+v, want %v", r, tc.want)
			}
			if _, _, ok := flow(tab, testKey); ok == tc.gone {
				t.Fatalf("entry present %v, want gone %v", ok, tc.gone)
			}
			checkInvariants(t, tab)
		})
	}
}

// TestTCPSynReuse is conntrack_synack_reuse / pf challenge_ack: a SYN on
// an established connection passes without changing it, the challenge ACK
// passes, the client's exact RST closes, and the retransmitted SYN opens
// a new flow.
func TestTCPSynReuse(t *testing.T) {
	tab, _ := newTestTable(t, nil)
	c := established(t, tab)
	// The client lost its state and starts over with a new ISN.
	old := c.side[0].nxt
	c.side[0].isn = old + 1<<20
	syn := c.pkt(DirOriginal, fSYN, 0)
	before := entryOf(t, tab)
	if r := tab.Track(syn); r.State != StateEstablished || !r.Found {
		t.Fatalf("SYN in ESTABLISHED: %+v", r)
	}
	if e := entryOf(t, tab); e.tcp != TCPEstablished || e.deadline != before.deadline {
		t.Fatalf("SYN changed the entry: %v", e.tcp)
	}
	// Challenge ACK from the server: acknowledges the old sequence.
	c.side[0].nxt = old
	if r := c.send(DirReply, fACK, 0); r.State != StateEstablished {
		t.Fatalf("challenge ACK: %+v", r)
	}
	// The client answers with an RST at the acknowledged sequence.
	if r := c.send(DirOriginal, fRST, 0); r.State != StateEstablished {
		t.Fatalf("RST: %+v", r)
	}
	if e := entryOf(t, tab); e.tcp != TCPClose {
		t.Fatalf("after RST: %v", e.tcp)
	}
	if r := tab.Track(syn); r.State != StateNew || r.Found {
		t.Fatalf("SYN retransmit: %+v, want new", r)
	}
	if err := tab.Commit(syn, Verdict{}); err != nil {
		t.Fatal(err)
	}
	if e := entryOf(t, tab); e.tcp != TCPSynSent || e.conn.side[0].end != old+1<<20+1 {
		t.Fatalf("new flow %v end %d", e.tcp, e.conn.side[0].end)
	}
	checkInvariants(t, tab)
}

// TestTCPIgnoredSynResync: a SYN/ACK acknowledging a SYN the tracker
// ignored puts the entry back in sync (SYN_RECV with the new sequence
// numbers), and the connection completes.
func TestTCPIgnoredSynResync(t *testing.T) {
	tab, _ := newTestTable(t, nil)
	c := established(t, tab)
	c.side[0].isn = c.side[0].nxt + 1<<24
	c.side[1].isn = 5 << 28
	c.send(DirOriginal, fSYN, 0)
	if r := c.send(DirReply, fSYNACK, 0); r.State != StateEstablished {
		t.Fatalf("SYN/ACK: %+v", r)
	}
	if e := entryOf(t, tab); e.tcp != TCPSynRecv {
		t.Fatalf("after resync: %v", e.tcp)
	}
	if r := c.send(DirOriginal, fACK, 0); r.State != StateEstablished {
		t.Fatalf("ACK: %+v", r)
	}
	if r := c.send(DirOriginal, fPSHACK, 100); r.State != StateEstablished {
		t.Fatalf("data: %+v", r)
	}
	if e := entryOf(t, tab); e.tcp != TCPEstablished {
		t.Fatalf("state %v", e.tcp)
	}
}

// TestTCPChallengeAckInLastAck: in LAST_ACK a SYN is ignored and the
// challenge ACK it provokes must not be taken for the ACK of the last FIN
// (Linux commit b3cad287); the real last ACK then moves to TIME_WAIT.
func TestTCPChallengeAckInLastAck(t *testing.T) {
	tab, _ := newTestTable(t, nil)
	c := runTCP(t, tab, testKey, seq(handshake, []step{
		{DirOriginal, fFINACK, StateEstablished, TCPFinWait, true, false, false},
		{DirReply, fFINACK, StateEstablished, TCPLastAck, true, false, false},
	}))
	// The server's FIN is not yet acknowledged; a new SYN arrives.
	c2 := *c
	c2.side[0].isn = c.side[0].nxt + 1<<20
	if r := tab.Track(c2.pkt(DirOriginal, fSYN, 0)); r.State != StateEstablished {
		t.Fatalf("SYN in LAST_ACK: %+v", r)
	}
	// The server answers with a challenge ACK.
	p := c.pkt(DirReply, fACK, 0)
	p.Seq-- // at its FIN, as a challenge ACK is
	if r := tab.Track(p); r.State != StateEstablished {
		t.Fatalf("challenge ACK: %+v", r)
	}
	if e := entryOf(t, tab); e.tcp != TCPLastAck {
		t.Fatalf("challenge ACK taken as the last ACK: %v", e.tcp)
	}
	if r := c.send(DirOriginal, fACK, 0); r.State != StateEstablished {
		t.Fatalf("last ACK: %+v", r)
	}
	if e := entryOf(t, tab); e.tcp != TCPTimeWait {
		t.Fatalf("after the last ACK: %v", e.tcp)
	}
}

func TestTCPTimeoutSelection(t *testing.T) {
	est := 5 * 24 * time.Hour
	for _, tc := range []struct {
		name string
		play func(c *conv)
		want time.Duration
	}{
		{"established", func(c *conv) { c.send(DirReply, fACK, 0) }, est},
		{"unacknowledged data", func(c *conv) { c.send(DirOriginal, fPSHACK, 100) }, 300 * time.Second},
		{"acknowledged data", func(c *conv) {
			c.send(DirOriginal, fPSHACK, 100)
			c.send(DirReply, fACK, 0)
		}, est},
		{"zero window", func(c *conv) {
			c.side[1].win = 0
			c.send(DirReply, fACK, 0)
		}, 300 * time.Second},
		{"three retransmissions", func(c *conv) {
			c.send(DirOriginal, fPSHACK, 100)
			c.send(DirReply, fACK, 0)
			p := c.pkt(DirReply, fACK, 0)
			for range 4 {
				c.tab.Track(p)
			}
		}, 300 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tab, clk := newTestTable(t, func(c *Config) {
				c.Timeouts.TCPMaxRetrans = units.Duration(300 * time.Second)
			})
			c := established(t, tab)
			clk.Advance(time.Second)
			tc.play(c)
			e := entryOf(t, tab)
			if got := time.Duration(e.deadline - int64(clk.Now().Sub(clockBase))); got != tc.want {
				t.Fatalf("timeout %v, want %v", got, tc.want)
			}
		})
	}
}

// setLeft sets k's remaining timeout directly.
func setLeft(tab *Table, clk *fakeClock, k Key, d time.Duration) {
	h := tab.hash(&k)
	s := tab.shardFor(h)
	s.mu.Lock()
	slot, _, _ := s.find(&k, h)
	s.setDeadline(slot, s.at(slot), int64(clk.Now().Sub(clockBase))+int64(d))
	s.mu.Unlock()
}

// TestTCPHandleInvalid: an assured connection whose peer answers a FIN
// with an out-of-window packet keeps at most the UNACK timeout
// (nf_tcp_handle_invalid); an invalid packet from the FIN's sender does
// not shorten it.
func TestTCPHandleInvalid(t *testing.T) {
	tab, clk := newTestTable(t, nil)
	c := established(t, tab)
	c.send(DirOriginal, fFINACK, 0)
	left := func() time.Duration {
		e := entryOf(t, tab)
		return time.Duration(e.deadline - int64(clk.Now().Sub(clockBase)))
	}
	// A state whose timeout exceeds UNACK (as a configured FIN_WAIT of
	// hours would give).
	setLeft(tab, clk, testKey, time.Hour)
	bad := func(dir Dir) {
		t.Helper()
		p := c.pkt(dir, fACK, 0)
		p.Ack += 1 << 20 // acknowledges data never sent: invalid
		if r := tab.Track(p); r.State != StateInvalid {
			t.Fatalf("out of window %v: %+v", dir, r)
		}
	}
	bad(DirOriginal)
	if got := left(); got != time.Hour {
		t.Fatalf("invalid packet from the FIN's sender changed the timeout to %v", got)
	}
	bad(DirReply)
	if got := left(); got != 300*time.Second {
		t.Fatalf("timeout after an invalid answer to FIN: %v, want 300s", got)
	}
}

func TestLoosePickup(t *testing.T) {
	ack := &Packet{Key: testKey, TCPFlags: fACK, Seq: 5000, Ack: 9000, Window: 1000, TCPOpts: true}
	t.Run("off by default", func(t *testing.T) {
		tab, _ := newTestTable(t, nil)
		if r := tab.Track(ack); r.State != StateInvalid {
			t.Fatalf("mid-stream ACK: %+v", r)
		}
		if err := tab.Commit(ack, Verdict{}); err != ErrNotNew {
			t.Fatalf("Commit: %v", err)
		}
	})
	t.Run("loose", func(t *testing.T) {
		tab, clk := newTestTable(t, func(c *Config) { c.Loose = true })
		for _, f := range []uint8{fFINACK, fRST, fRSTACK, fSYNACK, 0} {
			if r := tab.Track(&Packet{Key: testKey, TCPFlags: f}); r.State != StateInvalid {
				t.Fatalf("flags %#x: %+v, want invalid even in loose mode", f, r)
			}
		}
		if r := tab.Track(ack); r.State != StateNew {
			t.Fatalf("mid-stream ACK: %+v", r)
		}
		if err := tab.Commit(ack, Verdict{}); err != nil {
			t.Fatal(err)
		}
		e := entryOf(t, tab)
		if e.tcp != TCPEstablished || time.Duration(e.deadline) != 300*time.Second {
			t.Fatalf("picked up: %v timeout %v", e.tcp, time.Duration(e.deadline))
		}
		// Until a reply is seen, further packets keep the UNACK cap.
		clk.Advance(time.Second)
		far := *ack
		far.Seq += 1 << 20 // liberal: window checks are off
		if r := tab.Track(&far); r.State != StateEstablished {
			t.Fatalf("liberal data: %+v", r)
		}
		e = entryOf(t, tab)
		if got := time.Duration(e.deadline) - time.Second; got != 300*time.Second {
			t.Fatalf("timeout before reply %v", got)
		}
		rk := replyKey(&testKey)
		if r := tab.Track(&Packet{Key: rk, TCPFlags: fACK, Seq: 9000, Ack: far.Seq, Window: 1000}); r.State != StateEstablished {
			t.Fatalf("reply: %+v", r)
		}
		// The reply direction carried an ack for the data: nothing is
		// unacknowledged on the server side, the client's data is.
		e = entryOf(t, tab)
		if e.flags&eSeenReply == 0 || tab.HalfOpen() != 0 {
			t.Fatalf("reply not seen: flags %#x half-open %d", e.flags, tab.HalfOpen())
		}
		checkInvariants(t, tab)
	})
}

// TestUnansweredSynExpires: SYN retransmits do not extend an unanswered
// connection (conntrack_tcp_unreplied.sh).
func TestUnansweredSynExpires(t *testing.T) {
	tab, clk := newTestTable(t, nil)
	c := openConv(t, tab, testKey)
	syn := c.pkt(DirOriginal, fSYN, 0)
	for range 11 {
		clk.Advance(10 * time.Second)
		if r := tab.Track(syn); r.State != StateEstablished {
			t.Fatalf("retransmit: %+v", r)
		}
	}
	clk.Advance(10 * time.Second)
	if r := tab.Track(syn); r.State != StateNew || r.Found {
		t.Fatalf("after 120s of retransmits: %+v, want expired", r)
	}
}

// TestQuoteWindow checks the ICMP error window check on quoted TCP
// sequence numbers.
func TestQuoteWindow(t *testing.T) {
	tab, _ := newTestTable(t, nil)
	c := established(t, tab)
	c.send(DirOriginal, fPSHACK, 1000)
	c.send(DirReply, fACK, 0)
	cliNext := c.side[0].nxt
	// An error from a router on the path back to the client, about the
	// client's segment.
	outer := &Packet{Key: mkKey(protoICMP, "198.18.9.9", "198.18.0.1", 0, 0), ICMPType: 3, ICMPCode: 4}
	for _, tc := range []struct {
		name string
		seq  uint32
		l4   int
		want CtState
	}{
		{"last segment", cliNext - 1000, 8, StateRelated},
		{"next byte", cliNext, 8, StateRelated},
		{"within the server's window", cliNext + 60000, 8, StateRelated},
		{"beyond the window", cliNext + 1<<20, 8, StateInvalid},
		{"long before", cliNext - 1<<20, 8, StateInvalid},
		{"truncated quote", cliNext, 7, StateInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tab.TrackICMPErrorQuote(outer, &Quote{Key: testKey, L4Len: tc.l4, Seq: tc.seq})
			if r.State != tc.want {
				t.Fatalf("got %+v, want %v", r, tc.want)
			}
			if tc.want == StateRelated && (r.Dir != DirReply || !r.Found) {
				t.Fatalf("got %+v", r)
			}
		})
	}
}

// TestRangeReportsWindows checks the window state the listing shows: End
// is each sender's next sequence number, MaxEnd lies at or beyond it, a
// window scale is in use only when both SYNs offered one, and a picked-up
// flow is liberal.
func TestRangeReportsWindows(t *testing.T) {
	tab, _ := newTestTable(t, func(c *Config) { c.Loose = true })
	c := newConv(tab, tcpKey("198.18.0.1", "198.18.1.1", 40000, 443))
	c.side[0].wscale = 7
	if err := tab.Commit(c.pkt(DirOriginal, fSYN, 0), Verdict{}); err != nil {
		t.Fatal(err)
	}
	c.send(DirReply, fSYNACK, 0)
	c.send(DirOriginal, fACK, 0)
	c.send(DirOriginal, fPSHACK, 1000)
	c.send(DirReply, fPSHACK, 300)
	scaled := newConv(tab, tcpKey("198.18.0.3", "198.18.1.1", 40002, 443))
	scaled.side[0].wscale, scaled.side[1].wscale = 7, 9
	if err := tab.Commit(scaled.pkt(DirOriginal, fSYN, 0), Verdict{}); err != nil {
		t.Fatal(err)
	}
	scaled.send(DirReply, fSYNACK, 0)
	pickup := tcpKey("198.18.0.2", "198.18.1.1", 40001, 443)
	if err := tab.Commit(&Packet{Key: pickup, TCPFlags: fACK, Seq: 5000, Ack: 9000, Window: 512}, Verdict{}); err != nil {
		t.Fatal(err)
	}
	seen := 0
	tab.Range(func(fi FlowInfo) bool {
		seen++
		w := fi.Window
		switch fi.Orig {
		case c.k:
			for d := range w {
				if w[d].End != c.side[d].nxt || before(w[d].MaxEnd, w[d].End) || w[d].MaxWin == 0 || w[d].Liberal {
					t.Errorf("dir %d: %+v, sender's next seq %d", d, w[d], c.side[d].nxt)
				}
			}
			// The server's SYN/ACK had no window scale, so neither side
			// scales (RFC 7323: both or neither).
			if w[0].WScale != 0 || w[1].WScale != 0 {
				t.Errorf("window scales %d/%d, want 0/0 (only one SYN offered it)", w[0].WScale, w[1].WScale)
			}
		case scaled.k:
			if w[0].WScale != 7 || w[1].WScale != 9 {
				t.Errorf("window scales %d/%d, want 7/9", w[0].WScale, w[1].WScale)
			}
		case pickup:
			if !w[DirOriginal].Liberal || w[DirOriginal].End != 5000 {
				t.Errorf("picked-up flow: %+v", w[DirOriginal])
			}
		default:
			t.Errorf("unexpected flow %v", fi.Orig)
		}
		return true
	})
	if seen != 3 {
		t.Fatalf("listed %d flows", seen)
	}
}
