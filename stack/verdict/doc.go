// Package verdict carries out what the policy decided about a flow, with
// every side effect of that decision, in one place: the rule counters, the
// decision log, audit lines, add_to and the flushes it asks for, the
// conntrack commit or cached-verdict update, the L7 fields recorded for the
// operator, and ending a flow that is no longer allowed. Every stage that
// decides calls the same Applier: the filter hook on a flow's first packet
// (or an invalid one), a pending flow once its TLS or HTTP field was read,
// each DNS query, a payload or HTTP-request hit on a relayed stream, an
// audit hit, and a reload's recheck.
//
// It also owns the per-flow state the data plane keeps beside conntrack
// (Flows): the verdict a flow's forwarder handler needs, the cancel of its
// relay, its recorded L7 fields and whether a reload asked to decide it
// again. conntrack's entries hold no pointers, so that state lives here,
// keyed by the flow's original-direction key, and conntrack's OnDestroy
// callback removes it the moment a flow leaves the table: nothing here
// walks the table to find stale state.
//
// It knows nothing of packets' wire format, gVisor or sockets: callers
// describe a decision (Decision) and act on the Outcome.
package verdict
