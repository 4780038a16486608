package verdict

import "sync/atomic"

// Counters are what the Applier counts, read by the data plane's Stats.
type Counters struct {
	PolicyDrops      atomic.Uint64 // new flows (and pending ones at their field) dropped by policy
	PolicyRejects    atomic.Uint64 // new flows rejected (RST / ICMP unreachable sent), pending ones refused
	RejectsLimited   atomic.Uint64 // rejects answered with a drop: [reject] max_rate exceeded
	CommitFailures   atomic.Uint64 // allowed flows that did not fit the table
	NewFlows         atomic.Uint64 // flows committed
	PayloadHits      atomic.Uint64 // flows ended by a payload rule or a refused later HTTP request
	AuditHits        atomic.Uint64 // audit-mode matches logged as would-<action>
	FlowsFlushed     atomic.Uint64 // tracked flows ended by add_to flush_flows
	FlushesDropped   atomic.Uint64 // flush requests refused because too many were queued
	RecheckTeardowns atomic.Uint64 // tracked flows ended because a reload's policy no longer allows them
}
