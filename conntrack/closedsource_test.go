package conntrack

import (
	"errors"
	"net/netip"
	"testing"
)

var activeClose = []step{
	{DirOriginal, fFINACK, StateEstablished, TCPFinWait, true, false, false},
	{DirReply, fACK, StateEstablished, TCPCloseWait, true, false, false},
	{DirReply, fFINACK, StateEstablished, TCPLastAck, true, false, false},
	{DirOriginal, fACK, StateEstablished, TCPTimeWait, true, false, false},
}

// TestClosedFlowsFreeTheirSource: a source that opens and properly closes
// connections is limited by its live connections only (Linux's connlimit),
// not by the ones lingering in TIME_WAIT or CLOSE, in max_flows_per_source
// and in SourceCount (max_conns).
func TestClosedFlowsFreeTheirSource(t *testing.T) {
	tab, _ := newTestTable(t, func(c *Config) { c.MaxFlowsPerSource = 2 })
	src := netip.MustParseAddr("198.18.0.1")
	// Churn: many connections in turn, each closed, never more than one
	// live; all but the limit stay tracked in TIME_WAIT.
	for port := uint16(40000); port < 40010; port++ {
		runTCP(t, tab, tcpKey("198.18.0.1", "198.18.1.1", port, 80), seq(handshake, activeClose))
		if n := tab.SourceCount(src); n != 0 {
			t.Fatalf("after closing port %d: SourceCount %d; want 0 (only TIME_WAIT flows left)", port, n)
		}
		checkInvariants(t, tab)
	}
	if n := tab.Len(); n != 10 {
		t.Fatalf("%d flows tracked; want the 10 in TIME_WAIT", n)
	}
	// Live connections still count, up to the limit.
	openConv(t, tab, tcpKey("198.18.0.1", "198.18.1.1", 41000, 80))
	openConv(t, tab, tcpKey("198.18.0.1", "198.18.1.1", 41001, 80))
	if n := tab.SourceCount(src); n != 2 {
		t.Errorf("SourceCount %d with two live connections; want 2", n)
	}
	syn := &Packet{Key: tcpKey("198.18.0.1", "198.18.1.1", 41002, 80), TCPFlags: fSYN}
	if err := tab.Commit(syn, Verdict{}); !errors.Is(err, ErrSourceLimit) {
		t.Errorf("third live connection: %v; want ErrSourceLimit", err)
	}
	// A reopening SYN on a TIME_WAIT tuple counts once, as a live flow.
	reopen := &Packet{Key: tcpKey("198.18.0.1", "198.18.1.1", 40000, 80), TCPFlags: fSYN, Seq: 1 << 30}
	if err := tab.Commit(reopen, Verdict{}); !errors.Is(err, ErrSourceLimit) {
		t.Errorf("reopening at the limit: %v; want ErrSourceLimit", err)
	}
	checkInvariants(t, tab)
}
