package verdict

import (
	"github.com/tungate/tungate/conntrack"
	"github.com/tungate/tungate/policy"
)

// Stage is the point of a flow's life at which a decision was made. What
// a verdict implies beyond its action depends on it: a flow's first
// packet commits the flow, a pending flow's final verdict adds only what
// its first packet's verdict had not applied yet, and so on.
type Stage uint8

const (
	// StageNew: a flow's first packet, decided on L3/L4 (the filter hook).
	StageNew Stage = iota
	// StageInvalid: a packet conntrack calls INVALID, decided by the rules
	// that list ct_state "invalid".
	StageInvalid
	// StageInvalidDefault: an INVALID packet when no rule lists ct_state
	// "invalid": defaults.invalid applies, and no rule is counted.
	StageInvalidDefault
	// StageResume: a TCP flow pending on tls.sni or http.* once the field
	// was read; Decision.Prior is the verdict its first packet got.
	StageResume
	// StageQuery: one DNS query of a flow pending on dns.qname.
	StageQuery
	// StageHit: a drop or reject hit on a relayed stream (a payload
	// pattern, or a later HTTP request the http.* rules refuse). The relay
	// ends the flow itself.
	StageHit
	// StageAudit: an audit-mode hit on a relayed stream: logged as
	// would-<action>, the flow goes on.
	StageAudit
	// StageRecheck: a reload's policy decided a tracked flow again.
	StageRecheck
)

var stageNames = [...]string{"new", "invalid", "invalid-default", "resume", "query", "hit", "audit", "recheck"}

func (s Stage) String() string {
	if int(s) < len(stageNames) {
		return stageNames[s]
	}
	return "unknown"
}

// Outcome is what the caller must do with the packet or flow once the
// verdict's side effects are done.
type Outcome uint8

const (
	// Drop: discard the packet, or for a flow's later stages, refuse the
	// flow (the caller resets the client, or answers 403 when
	// Verdict.Reject says so). Already counted.
	Drop Outcome = iota
	// Pass: let the packet through (into gVisor), or let the flow go on.
	Pass
	// Echo: an allowed ICMP echo request: forward it for real.
	Echo
	// RejectTCP: answer the packet with a TCP RST.
	RejectTCP
	// RejectICMP: answer with ICMP / ICMPv6 port unreachable.
	RejectICMP
	// RejectAdmin: answer with ICMP / ICMPv6 administratively prohibited.
	RejectAdmin
)

var outcomeNames = [...]string{"drop", "pass", "echo", "reject-tcp", "reject-icmp", "reject-admin"}

func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "unknown"
}

// Decision describes one decision for Apply. It is passed by pointer and
// not retained, so filling one on the caller's stack allocates nothing.
type Decision struct {
	Stage  Stage
	Policy *policy.Policy // the policy that decided (rule indices are per policy)
	// Verdict is what was decided (unused by StageHit and StageAudit).
	// It is a copy, not a pointer: a Decision's pointers escape (its
	// strings reach the log), and a pointer to the caller's verdict would
	// move that verdict to the heap on every call. Apply may update its
	// Field and Value for the log.
	Verdict policy.Verdict
	// Prior is, for StageResume, the verdict the flow's first packet got:
	// what it applied then is not applied again.
	Prior *policy.Verdict
	// Key is the flow's original-direction key; for StageNew and the
	// invalid stages, the packet's own key.
	Key conntrack.Key
	// Packet is, for StageNew and the invalid stages, the packet decided:
	// StageNew commits it, and its length counts against the rule.
	Packet *conntrack.Packet
	// EchoRequest: the packet is an ICMP echo request (StageNew and the
	// invalid stages), so an allowed one is forwarded for real (Echo).
	EchoRequest bool
	// Hit is the stream hit of StageHit and StageAudit.
	Hit *policy.Hit
	// Name is, for StageQuery, the query's name when it parsed (nil
	// otherwise); it becomes a string only when something logs or records
	// it.
	Name []byte
	// Read and ReadValue are, for StageResume, the field the extractor
	// read and its value, recorded even when a later L3/L4 rule decided.
	Read      policy.L7Field
	ReadValue string
}
