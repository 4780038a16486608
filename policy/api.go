// Package policy compiles tungate's rules (defaults, sets, ordered rules with
// L3/L4 and payload conditions) and decides flows against them. It knows
// nothing of the stack or sockets: callers describe a flow with a Flow value
// and feed stream bytes to an Inspector.
package policy

import "net/netip"

// Action is a terminal decision.
type Action uint8

const (
	ActionDrop   Action = iota // discard silently (the zero value fails closed)
	ActionAllow                // let the flow through
	ActionReject               // discard and tell the sender (see RejectKind)
)

// RejectKind says how a reject is signalled to the sender.
type RejectKind uint8

const (
	RejectNone                RejectKind = iota // not a reject
	RejectTCPReset                              // TCP RST
	RejectICMPPortUnreachable                   // ICMP port unreachable / ICMPv6 port unreachable
)

// Flow describes a new flow's first packet.
type Flow struct {
	Proto            uint8 // IANA protocol number
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	ICMPType         uint8
}

// Verdict is the outcome of Decide.
type Verdict struct {
	Action  Action
	Reject  RejectKind // set when Action is ActionReject, resolved from "auto"
	Rule    int        // index of the deciding rule, -1 for defaults.policy
	RuleID  uint32     // stable ID of the deciding rule's name across reloads; 0 for the default
	LogRule int        // index of the first matching action="log" rule, -1 if none
	Log     bool       // the decision should be logged (rule log=true or [log] decisions)
	Armed   bool       // payload rules are armed on this flow: call NewInspector
}

// StreamDir is the direction of stream bytes fed to an Inspector.
type StreamDir uint8

const (
	ToServer StreamDir = iota
	ToClient
)

// Hit is a payload rule that matched a flow's stream.
type Hit struct {
	Rule    int
	RuleID  uint32
	Action  Action
	Reject  RejectKind
	Pattern string // the configured pattern, for logs
}
