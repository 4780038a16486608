package stack

import (
	"sync/atomic"

	"github.com/tungate/tungate/stack/packet"
)

// Stats is a snapshot of the data plane's counters.
type Stats struct {
	RxPackets, RxBytes uint64 // read from the TUN
	TxPackets, TxBytes uint64 // written to the TUN (gVisor output and synthesized replies)
	TxErrors           uint64 // packets the TUN refused, or larger than the MTU
	TxFiltered         uint64 // gVisor output never written: its own NDP/MLD chatter, anything malformed
	TxFragments        uint64 // fragments gVisor emitted for datagrams larger than the link MTU

	Malformed map[string]uint64 // dropped before conntrack, by reason (only non-zero reasons)

	Invalid        uint64 // conntrack said INVALID (conntrack's own Invalid counter is the operator's view)
	PolicyDrops    uint64 // new flows dropped by policy
	PolicyRejects  uint64 // new flows rejected (RST / ICMP unreachable sent)
	RejectsLimited uint64 // rejects answered with a drop because [reject] max_rate was exceeded
	VerdictDrops   uint64 // packets of flows whose cached verdict is drop (after a payload hit)
	CommitFailures uint64 // allowed flows that did not fit the table (ErrTableFull / ErrSourceLimit)
	NewFlows       uint64 // flows committed

	TCPDialFailures uint64 // upstream TCP dials that failed
	Unreachables    uint64 // ICMP errors relayed to clients: a dial found no host, an upstream UDP port refused
	ICMPLimited     uint64 // such errors not sent: over the ICMP budget
	UDPDialFailures uint64
	PayloadHits     uint64 // flows torn down by a payload rule

	EchoForwarded uint64 // echo requests handed to the pinger
	EchoReplies   uint64 // echo replies synthesized back to clients
	EchoDropped   uint64 // echo requests dropped: pinger busy or unavailable

	LogSuppressed uint64 // decision log lines dropped by the rate limit

	AuditHits        uint64 // audit-mode matches logged as would-<action>
	FlowsFlushed     uint64 // tracked flows ended by add_to flush_flows
	FlushesDropped   uint64 // flush requests refused because too many were queued
	RecheckTeardowns uint64 // tracked flows ended because a reload's policy no longer allows them
}

// counters are the data path's live counters; the Applier keeps those of
// decisions (verdict.Counters) and the decision log its suppressed lines.
type counters struct {
	rxPackets, rxBytes, txPackets, txBytes, txErrors, txFiltered atomic.Uint64
	txFragments                                                  atomic.Uint64

	malformed [packet.NumReasons]atomic.Uint64

	invalid, verdictDrops                   atomic.Uint64
	tcpDialFailures, udpDialFailures        atomic.Uint64
	unreachables, icmpLimited               atomic.Uint64
	echoForwarded, echoReplies, echoDropped atomic.Uint64
}

func (s *Stack) snapshot() Stats {
	c, a := &s.ctr, s.apply.Counters()
	st := Stats{
		RxPackets: c.rxPackets.Load(), RxBytes: c.rxBytes.Load(),
		TxPackets: c.txPackets.Load(), TxBytes: c.txBytes.Load(), TxErrors: c.txErrors.Load(), TxFiltered: c.txFiltered.Load(),
		TxFragments:     c.txFragments.Load(),
		Malformed:       make(map[string]uint64),
		Invalid:         c.invalid.Load(),
		PolicyDrops:     a.PolicyDrops.Load(),
		PolicyRejects:   a.PolicyRejects.Load(),
		VerdictDrops:    c.verdictDrops.Load(),
		CommitFailures:  a.CommitFailures.Load(),
		NewFlows:        a.NewFlows.Load(),
		TCPDialFailures: c.tcpDialFailures.Load(),
		UDPDialFailures: c.udpDialFailures.Load(),
		Unreachables:    c.unreachables.Load(),
		ICMPLimited:     c.icmpLimited.Load(),
		PayloadHits:     a.PayloadHits.Load(),
		EchoForwarded:   c.echoForwarded.Load(),
		EchoReplies:     c.echoReplies.Load(),
		EchoDropped:     c.echoDropped.Load(),
		LogSuppressed:   s.dlog.Suppressed(),

		RejectsLimited:   a.RejectsLimited.Load(),
		AuditHits:        a.AuditHits.Load(),
		FlowsFlushed:     a.FlowsFlushed.Load(),
		FlushesDropped:   a.FlushesDropped.Load(),
		RecheckTeardowns: a.RecheckTeardowns.Load(),
	}
	for r := packet.ReasonNone + 1; r < packet.NumReasons; r++ {
		if n := c.malformed[r].Load(); n != 0 {
			st.Malformed[r.String()] = n
		}
	}
	return st
}
