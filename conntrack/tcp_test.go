package conntrack

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

const (
	fSYN    = flagSYN
	fSYNACK = flagSYN | flagACK
	fACK    = flagACK
	fFINACK = flagFIN | flagACK
	fRST    = flagRST
	fRSTACK = flagRST | flagACK
	fPSHACK = flagPSH | flagACK
)

// peer is one endpoint of a modelled TCP connection.
type peer struct {
	isn, nxt uint32 // initial and next sequence number
	win      uint16
	wscale   int8
}

// conv models a well-behaved connection on k so tests can play packets
// with correct sequence numbers and acknowledgements: every ACK
// acknowledges all the other side sent.
type conv struct {
	tab  *Table
	k    Key
	side [2]peer
}

func newConv(tab *Table, k Key) *conv {
	return &conv{tab: tab, k: k, side: [2]peer{
		{isn: 0xfffff000, nxt: 0xfffff000, win: 64240, wscale: -1}, // wraps during tests
		{isn: 1000, nxt: 1000, win: 65160, wscale: -1},
	}}
}

func (c *conv) key(dir Dir) Key {
	if dir == DirReply {
		return replyKey(&c.k)
	}
	return c.k
}

// pkt builds the next packet dir sends and advances the model.
func (c *conv) pkt(dir Dir, flags uint8, payload int) *Packet {
	snd, rcv := &c.side[dir], &c.side[1-dir]
	p := &Packet{Key: c.key(dir), TCPFlags: flags, Seq: snd.nxt, Window: snd.win,
		PayloadLen: payload, Len: 40 + payload, TCPOpts: true, WScale: -1}
	if flags&flagSYN != 0 {
		p.Seq = snd.isn
		p.WScale = snd.wscale
		p.SACKPerm = true
	}
	if flags&flagACK != 0 {
		p.Ack = rcv.nxt
	}
	if flags&flagRST == 0 {
		snd.nxt = segEnd(p)
	}
	return p
}

// send builds and tracks the next packet.
func (c *conv) send(dir Dir, flags uint8, payload int) Result {
	return c.tab.Track(c.pkt(dir, flags, payload))
}

// step is one packet of a TCP sequence after the opening SYN.
type step struct {
	dir      Dir
	flags    uint8
	want     CtState
	tcp      TCPState // state afterwards
	assured  bool
	gone     bool // entry removed afterwards
	wantDead bool // want Found=false (reopen)
}

var handshake = []step{
	{DirReply, fSYNACK, StateEstablished, TCPSynRecv, false, false, false},
	{DirOriginal, fACK, StateEstablished, TCPEstablished, true, false, false},
}

func seq(parts ...[]step) []step {
	var out []step
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// openConv sends a SYN on k and commits it.
func openConv(t *testing.T, tab *Table, k Key) *conv {
	t.Helper()
	c := newConv(tab, k)
	syn := c.pkt(DirOriginal, fSYN, 0)
	if r := tab.Track(syn); r.State != StateNew || r.Found {
		t.Fatalf("SYN: got %+v, want new", r)
	}
	if err := tab.Commit(syn, Verdict{Action: 1, Rule: 7}); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if e, _, ok := flow(tab, k); !ok || e.tcp != TCPSynSent {
		t.Fatalf("after SYN: entry %+v found=%v, want SYN_SENT", e, ok)
	}
	return c
}

// runTCP opens a connection with a SYN and Commit, then plays steps; data
// steps (PSH) carry 100 bytes.
func runTCP(t *testing.T, tab *Table, k Key, steps []step) *conv {
	t.Helper()
	c := openConv(t, tab, k)
	c.play(t, steps)
	return c
}

func (c *conv) play(t *testing.T, steps []step) {
	t.Helper()
	for i, s := range steps {
		payload := 0
		if s.flags&flagPSH != 0 {
			payload = 100
		}
		r := c.send(s.dir, s.flags, payload)
		if r.State != s.want {
			t.Fatalf("step %d (%v %#x): state %v, want %v", i, s.dir, s.flags, r.State, s.want)
		}
		if s.wantDead {
			if r.Found {
				t.Fatalf("step %d: Found, want a reopen", i)
			}
			continue
		}
		if !r.Found || r.Dir != s.dir || r.Verdict != (Verdict{1, 7}) {
			t.Fatalf("step %d: got %+v, want found in dir %v with cached verdict", i, r, s.dir)
		}
		e, _, ok := flow(c.tab, c.k)
		if s.gone {
			if ok {
				t.Fatalf("step %d: entry still present: %+v", i, e)
			}
			continue
		}
		if !ok {
			t.Fatalf("step %d: entry vanished", i)
		}
		if e.tcp != s.tcp || (e.flags&eAssured != 0) != s.assured {
			t.Fatalf("step %d (%v %#x): state %v assured=%v, want %v assured=%v",
				i, s.dir, s.flags, e.tcp, e.flags&eAssured != 0, s.tcp, s.assured)
		}
	}
	checkInvariants(t, c.tab)
}

func TestTCPSequences(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
	}{
		{"handshake", handshake},
		{"data after handshake", seq(handshake, []step{
			{DirReply, fPSHACK, StateEstablished, TCPEstablished, true, false, false},
			{DirOriginal, fPSHACK, StateEstablished, TCPEstablished, true, false, false},
		})},
		{"active close to TIME_WAIT", seq(handshake, []step{
			{DirOriginal, fFINACK, StateEstablished, TCPFinWait, true, false, false},
			{DirReply, fACK, StateEstablished, TCPCloseWait, true, false, false},
			{DirReply, fFINACK, StateEstablished, TCPLastAck, true, false, false},
			{DirOriginal, fACK, StateEstablished, TCPTimeWait, true, false, false},
		})},
		{"passive close to TIME_WAIT", seq(handshake, []step{
			{DirReply, fFINACK, StateEstablished, TCPFinWait, true, false, false},
			{DirOriginal, fFINACK, StateEstablished, TCPLastAck, true, false, false},
			{DirReply, fACK, StateEstablished, TCPTimeWait, true, false, false},
		})},
		{"RST from server", seq(handshake, []step{
			{DirReply, fRST, StateEstablished, TCPClose, true, false, false},
		})},
		{"RST|ACK from client", seq(handshake, []step{
			{DirOriginal, fRSTACK, StateEstablished, TCPClose, true, false, false},
		})},
		{"RST answering the SYN kills the entry", []step{
			{DirReply, fRSTACK, StateEstablished, 0, false, true, false},
		}},
		{"simultaneous open", []step{
			{DirReply, fSYN, StateEstablished, TCPSynSent2, false, false, false},
			{DirOriginal, fSYNACK, StateEstablished, TCPSynRecv, false, false, false},
			{DirReply, fSYNACK, StateEstablished, TCPSynRecv, false, false, false},
			{DirOriginal, fACK, StateEstablished, TCPEstablished, true, false, false},
		}},
		{"SYN in ESTABLISHED is ignored", seq(handshake, []step{
			{DirOriginal, fSYN, StateEstablished, TCPEstablished, true, false, false},
		})},
		{"SYN/ACK retransmit in ESTABLISHED is ignored", seq(handshake, []step{
			{DirReply, fSYNACK, StateEstablished, TCPEstablished, true, false, false},
		})},
		{"reply SYN in ESTABLISHED is invalid", seq(handshake, []step{
			{DirReply, fSYN, StateInvalid, TCPEstablished, true, false, false},
		})},
		{"client SYN/ACK in SYN_SENT is invalid", []step{
			{DirOriginal, fSYNACK, StateInvalid, TCPSynSent, false, false, false},
		}},
		{"client ACK before SYN/ACK is invalid", []step{
			{DirOriginal, fACK, StateInvalid, TCPSynSent, false, false, false},
		}},
		{"SYN in TIME_WAIT reopens", seq(handshake, []step{
			{DirOriginal, fFINACK, StateEstablished, TCPFinWait, true, false, false},
			{DirReply, fFINACK, StateEstablished, TCPLastAck, true, false, false},
			{DirOriginal, fACK, StateEstablished, TCPTimeWait, true, false, false},
			{DirOriginal, fSYN, StateNew, 0, false, false, true},
		})},
		{"SYN in CLOSE reopens", seq(handshake, []step{
			{DirReply, fRST, StateEstablished, TCPClose, true, false, false},
			{DirOriginal, fSYN, StateNew, 0, false, false, true},
		})},
		{"reply SYN in CLOSE is invalid", seq(handshake, []step{
			{DirReply, fRST, StateEstablished, TCPClose, true, false, false},
			{DirReply, fSYN, StateInvalid, TCPClose, true, false, false},
		})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tab, _ := newTestTable(t, nil)
			runTCP(t, tab, tcpKey("198.18.0.1", "198.18.1.1", 40000, 80), tc.steps)
		})
	}
}

// invalidFlags are combinations Linux's tcp_valid_flags rejects.
var invalidFlags = []struct {
	name  string
	flags uint8
}{
	{"NULL", 0},
	{"FIN", flagFIN},
	{"XMAS", flagFIN | flagPSH | flagURG},
	{"SYN+FIN", flagSYN | flagFIN},
	{"SYN+RST", flagSYN | flagRST},
	{"SYN+FIN+RST", flagSYN | flagFIN | flagRST},
	{"SYN+FIN+ACK", flagSYN | flagFIN | flagACK},
	{"FIN+RST+ACK", flagFIN | flagRST | flagACK},
	{"URG", flagURG},
	{"PSH", flagPSH},
	{"FIN+URG", flagFIN | flagURG},
	{"all", 0xff},
}

func TestInvalidFlagsLeaveStateUntouched(t *testing.T) {
	for _, st := range []struct {
		name  string
		steps []step
	}{
		{"SYN_SENT", nil},
		{"SYN_RECV", handshake[:1]},
		{"ESTABLISHED", handshake},
	} {
		for _, f := range invalidFlags {
			for _, dir := range []Dir{DirOriginal, DirReply} {
				t.Run(fmt.Sprintf("%s/%s/%v", st.name, f.name, dir), func(t *testing.T) {
					tab, clk := newTestTable(t, nil)
					k := tcpKey("198.18.0.1", "198.18.1.1", 40000, 80)
					runTCP(t, tab, k, st.steps)
					before, _, _ := flow(tab, k)
					statsBefore := tab.Stats()
					clk.Advance(time.Second)
					pk := k
					if dir == DirReply {
						pk = replyKey(&k)
					}
					r := tab.Track(&Packet{Key: pk, TCPFlags: f.flags, Len: 40})
					if r.State != StateInvalid || !r.Found || r.Dir != dir {
						t.Fatalf("got %+v, want invalid, found, dir %v", r, dir)
					}
					after, _, ok := flow(tab, k)
					if !ok || after != before {
						t.Fatalf("entry changed:\nbefore %+v\nafter  %+v", before, after)
					}
					if got := tab.Stats().Invalid; got != statsBefore.Invalid+1 {
						t.Fatalf("invalid counter %d, want %d", got, statsBefore.Invalid+1)
					}
				})
			}
		}
	}
}

func TestFirstPacketMustBeSYN(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags uint8
		want  CtState
	}{
		{"SYN", fSYN, StateNew},
		{"SYN+URG", fSYN | flagURG, StateNew},
		{"SYN+ECE+CWR", fSYN | 0xc0, StateNew},
		{"SYN+PSH", fSYN | flagPSH, StateNew},
		{"ACK", fACK, StateInvalid},
		{"FIN+ACK", fFINACK, StateInvalid},
		{"RST", fRST, StateInvalid},
		{"RST+ACK", fRSTACK, StateInvalid},
		{"SYN+ACK", fSYNACK, StateInvalid},
		{"NULL", 0, StateInvalid},
		{"XMAS", flagFIN | flagPSH | flagURG, StateInvalid},
		{"SYN+FIN", flagSYN | flagFIN, StateInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tab, _ := newTestTable(t, nil)
			p := &Packet{Key: tcpKey("198.18.0.1", "198.18.1.1", 40000, 80), TCPFlags: tc.flags}
			r := tab.Track(p)
			if r.State != tc.want || r.Found {
				t.Fatalf("Track: %+v, want %v", r, tc.want)
			}
			err := tab.Commit(p, Verdict{})
			if tc.want == StateNew && err != nil {
				t.Fatalf("Commit: %v", err)
			}
			if tc.want == StateInvalid && !errors.Is(err, ErrNotNew) {
				t.Fatalf("Commit: %v, want ErrNotNew", err)
			}
			if want := map[CtState]int{StateNew: 1, StateInvalid: 0}[tc.want]; tab.Len() != want {
				t.Fatalf("Len %d, want %d", tab.Len(), want)
			}
		})
	}
}

func TestTCPReopenReplacesEntry(t *testing.T) {
	tab, _ := newTestTable(t, nil)
	k := tcpKey("198.18.0.1", "198.18.1.1", 40000, 80)
	runTCP(t, tab, k, seq(handshake, []step{{DirReply, fRST, StateEstablished, TCPClose, true, false, false}}))
	syn := &Packet{Key: k, TCPFlags: fSYN, Len: 60}
	if r := tab.Track(syn); r.State != StateNew {
		t.Fatalf("SYN on CLOSE: %+v", r)
	}
	// Until Commit, the old entry is untouched (policy might refuse).
	if e, _, _ := flow(tab, k); e.tcp != TCPClose {
		t.Fatalf("entry changed before Commit: %v", e.tcp)
	}
	if err := tab.Commit(syn, Verdict{Action: 2}); err != nil {
		t.Fatal(err)
	}
	e, _, ok := flow(tab, k)
	if !ok || e.tcp != TCPSynSent || e.packets != [2]uint64{1, 0} || e.flags&eAssured != 0 || e.verdict.Action != 2 {
		t.Fatalf("reopened entry: %+v", e)
	}
	if tab.Len() != 1 || tab.Stats().Removed != 1 {
		t.Fatalf("Len %d, stats %v", tab.Len(), tab.Stats())
	}
	checkInvariants(t, tab)
}

func TestTCPTimeouts(t *testing.T) {
	tab, clk := newTestTable(t, nil)
	k := tcpKey("198.18.0.1", "198.18.1.1", 40000, 80)
	syn := &Packet{Key: k, TCPFlags: fSYN}
	if err := tab.Commit(syn, Verdict{}); err != nil {
		t.Fatal(err)
	}
	// A SYN retransmit before any reply does not extend the 120s timeout.
	clk.Advance(100 * time.Second)
	if r := tab.Track(syn); r.State != StateEstablished {
		t.Fatalf("retransmit: %+v", r)
	}
	clk.Advance(21 * time.Second)
	if r := tab.Track(syn); r.State != StateNew || r.Found {
		t.Fatalf("after 121s: %+v, want expired", r)
	}
	if tab.Stats().Expired != 1 {
		t.Fatalf("stats %v", tab.Stats())
	}

	// Established lasts 5 days from the last packet.
	runTCP(t, tab, k, handshake)
	clk.Advance(4 * 24 * time.Hour)
	if r := tab.Track(&Packet{Key: k, TCPFlags: fACK}); r.State != StateEstablished {
		t.Fatalf("after 4d: %+v", r)
	}
	clk.Advance(5*24*time.Hour - time.Second)
	if _, _, ok := flow(tab, k); !ok {
		t.Fatal("gone before 5d idle")
	}
	clk.Advance(time.Second)
	if r := tab.Track(&Packet{Key: k, TCPFlags: fACK}); r.Found || r.State != StateInvalid {
		t.Fatalf("after 5d idle: %+v, want gone and invalid", r)
	}
	checkInvariants(t, tab)
}

func TestTCPTransitionTableShape(t *testing.T) {
	// Spot-check cells against the reference table by (dir, packet, state).
	cells := []struct {
		dir       Dir
		idx       int
		old, want TCPState
	}{
		{DirOriginal, tcpSynSet, TCPNone, TCPSynSent},
		{DirOriginal, tcpSynSet, TCPSynRecv, sIG},
		{DirOriginal, tcpAckSet, TCPNone, TCPEstablished},
		{DirOriginal, tcpAckSet, TCPLastAck, TCPTimeWait},
		{DirOriginal, tcpFinSet, TCPSynSent2, sIV},
		{DirReply, tcpSynSet, TCPTimeWait, TCPSynSent},
		{DirReply, tcpAckSet, TCPSynSent, sIG},
		{DirReply, tcpAckSet, TCPSynSent2, sIG},
		{DirReply, tcpSynAckSet, TCPSynSent2, TCPSynRecv},
		{DirReply, tcpRstSet, TCPNone, sIV},
		{DirReply, tcpNoneSet, TCPEstablished, sIV},
	}
	for _, c := range cells {
		if got := tcpTransitions[c.dir][c.idx][c.old]; got != c.want {
			t.Errorf("[%v][%d][%v] = %v, want %v", c.dir, c.idx, c.old, got, c.want)
		}
	}
}
