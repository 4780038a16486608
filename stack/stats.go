package stack

import "sync/atomic"

// dropReason says why the filter hook discarded a packet before policy.
type dropReason uint8

const (
	reasonNone       dropReason = iota
	reasonShort                 // shorter than its IP header
	reasonVersion               // IP version neither 4 nor 6
	reasonIPHeader              // header length / total length inconsistent with the buffer
	reasonIPChecksum            // IPv4 header checksum wrong
	reasonFragment              // a fragment (not reassembled, see parseIPv4)
	reasonExtHeader             // IPv6 extension chain too long or truncated
	reasonProto                 // a protocol this mode does not carry
	reasonTransport             // transport header truncated or inconsistent
	reasonChecksum              // TCP/UDP/ICMP checksum wrong
	reasonICMPType              // an ICMP type a gateway does not pass
	reasonICMPQuote             // an ICMP error quoting something unusable
	numReasons
)

var reasonNames = [numReasons]string{
	reasonNone:       "none",
	reasonShort:      "short",
	reasonVersion:    "ip_version",
	reasonIPHeader:   "ip_header",
	reasonIPChecksum: "ip_checksum",
	reasonFragment:   "fragment",
	reasonExtHeader:  "ipv6_ext_header",
	reasonProto:      "protocol",
	reasonTransport:  "transport_header",
	reasonChecksum:   "checksum",
	reasonICMPType:   "icmp_type",
	reasonICMPQuote:  "icmp_quote",
}

func (r dropReason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Stats is a snapshot of the data plane's counters.
type Stats struct {
	RxPackets, RxBytes uint64 // read from the TUN
	TxPackets, TxBytes uint64 // written to the TUN (gVisor output and synthesized replies)
	TxErrors           uint64 // packets the TUN refused, or larger than the MTU
	TxFiltered         uint64 // gVisor output never written: its own NDP/MLD chatter, anything malformed

	Malformed map[string]uint64 // dropped before conntrack, by reason (only non-zero reasons)

	Invalid        uint64 // conntrack said INVALID (conntrack's own Invalid counter is the operator's view)
	PolicyDrops    uint64 // new flows dropped by policy
	PolicyRejects  uint64 // new flows rejected (RST / ICMP unreachable sent)
	RejectsLimited uint64 // rejects answered with a drop because [reject] max_rate was exceeded
	VerdictDrops   uint64 // packets of flows whose cached verdict is drop (after a payload hit)
	CommitFailures uint64 // allowed flows that did not fit the table (ErrTableFull / ErrSourceLimit)
	NewFlows       uint64 // flows committed

	TCPDialFailures uint64 // upstream TCP dials that failed
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
	InspectBusy      uint64 // SYNs of inspected flows dropped: too many handshakes awaiting their relay
}

// counters are the live, atomically updated Stats.
type counters struct {
	rxPackets, rxBytes, txPackets, txBytes, txErrors, txFiltered atomic.Uint64

	malformed [numReasons]atomic.Uint64

	invalid, policyDrops, policyRejects, verdictDrops atomic.Uint64
	commitFailures, newFlows                          atomic.Uint64
	tcpDialFailures, udpDialFailures, payloadHits     atomic.Uint64
	echoForwarded, echoReplies, echoDropped           atomic.Uint64
	logSuppressed                                     atomic.Uint64
	rejectsLimited, auditHits, flowsFlushed           atomic.Uint64
	flushesDropped, recheckTeardowns, inspectBusy     atomic.Uint64
}

func (c *counters) snapshot() Stats {
	s := Stats{
		RxPackets: c.rxPackets.Load(), RxBytes: c.rxBytes.Load(),
		TxPackets: c.txPackets.Load(), TxBytes: c.txBytes.Load(), TxErrors: c.txErrors.Load(), TxFiltered: c.txFiltered.Load(),
		Malformed:       make(map[string]uint64),
		Invalid:         c.invalid.Load(),
		PolicyDrops:     c.policyDrops.Load(),
		PolicyRejects:   c.policyRejects.Load(),
		VerdictDrops:    c.verdictDrops.Load(),
		CommitFailures:  c.commitFailures.Load(),
		NewFlows:        c.newFlows.Load(),
		TCPDialFailures: c.tcpDialFailures.Load(),
		UDPDialFailures: c.udpDialFailures.Load(),
		PayloadHits:     c.payloadHits.Load(),
		EchoForwarded:   c.echoForwarded.Load(),
		EchoReplies:     c.echoReplies.Load(),
		EchoDropped:     c.echoDropped.Load(),
		LogSuppressed:   c.logSuppressed.Load(),

		RejectsLimited:   c.rejectsLimited.Load(),
		AuditHits:        c.auditHits.Load(),
		FlowsFlushed:     c.flowsFlushed.Load(),
		FlushesDropped:   c.flushesDropped.Load(),
		RecheckTeardowns: c.recheckTeardowns.Load(),
		InspectBusy:      c.inspectBusy.Load(),
	}
	for r := reasonNone + 1; r < numReasons; r++ {
		if n := c.malformed[r].Load(); n != 0 {
			s.Malformed[r.String()] = n
		}
	}
	return s
}
