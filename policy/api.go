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
	RejectICMPAdminProhibited                   // ICMP type 3 code 13 / ICMPv6 type 1 code 1
	RejectHTTP403                               // answer "403 Forbidden" (HTTP403Response) on the client connection, then close it
	RejectDNSNXDomain                           // answer the DNS query with NXDOMAIN (l7.NXDomain)
)

// CtState is the connection-tracking state of the packet being decided.
// The zero value is CtNew, so callers that only decide new flows need not
// set it.
type CtState uint8

const (
	CtNew         CtState = iota // first packet of a flow conntrack does not know
	CtEstablished                // packet of a known flow (e.g. rechecked on reload)
	CtRelated                    // ICMP error about a known flow
	CtInvalid                    // conntrack refused the packet
	numCtStates
)

// Flow describes the packet being decided, normally a new flow's first
// packet.
type Flow struct {
	Proto            uint8 // IANA protocol number
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	ICMPType         uint8
	CtState          CtState // zero: new
	// SrcConns is how many flows conntrack tracks for Src, before this
	// one; rules with max_conns compare against it.
	SrcConns int
}

// MaxAudit is how many audit hits one Verdict records; further hits set
// Verdict.AuditMore.
const MaxAudit = 4

// AuditHit is a rule that matched in audit mode: it is logged as
// would-<Action> and counted, and evaluation went on as if it had not
// matched. Rule is -1 for defaults.policy under [defaults] mode = "audit".
type AuditHit struct {
	Rule   int32
	RuleID uint32
	Action Action
}

// MaxAddTo is how many add_to actions one Verdict records.
const MaxAddTo = 2

// AddTo is a matched rule's add_to: put the flow's Addr into the dynamic
// set Set; when Flush, the caller tears down the tracked flows of Addr
// (source flows for key = "src", destination flows for key = "dst").
type AddTo struct {
	Rule  int32
	Set   string
	Addr  netip.Addr
	IsSrc bool // the key was "src"
	Flush bool
}

// Verdict is the outcome of Decide. It holds no pointers into the flow, so
// it may be copied freely; Decide fills it without allocating.
type Verdict struct {
	Action  Action
	Reject  RejectKind // set when Action is ActionReject, resolved from "auto"
	Rule    int        // index of the deciding rule, -1 for defaults.policy
	RuleID  uint32     // stable ID of the deciding rule's name across reloads; 0 for the default
	LogRule int        // index of the first matching action="log" rule, -1 if none
	Log     bool       // the decision should be logged (rule log=true or [log] decisions)
	Armed   bool       // payload rules (or per-request http rules) are armed on this flow: call NewInspector

	// Pending: a rule whose L3/L4 part matches needs an L7 field (Rule is
	// its index), so the flow is not decided yet. Action is ActionAllow
	// only in the sense that the flow may open: the caller completes the
	// client's handshake and then, for Need&NeedDNS, decides every DNS
	// query with DecideDNS; otherwise it extracts the fields with
	// NewL7Extractor and calls Resume for the final verdict.
	Pending bool
	Need    L7Need // with Pending: the fields rules from Rule on may read

	// Field and Value are the L7 field that decided (FieldNone when L3/L4
	// did) and its normalized value, for the log and conntrack. Resume
	// always sets Value when a field decided; DecideDNS only when the
	// verdict is logged or not an allow (it is the caller's q.Name()).
	Field L7Field
	Value string
	// Incomplete: Resume under [inspect] on_incomplete = "drop" dropped a
	// flow whose field did not arrive complete within the budget.
	Incomplete bool

	// at is 1 + the rule index evaluation resumes from (0: never
	// pending); httpEach asks NewInspector to check every later HTTP
	// request.
	at       int32
	httpEach bool

	// Audit lists, in file order, the rules that matched in audit mode
	// (rule mode = "audit", or every drop/reject under [defaults] mode =
	// "audit"). The caller logs each as would-<action> and counts it
	// (CountVerdict does the counting).
	Audit     [MaxAudit]AuditHit
	NAudit    uint8
	AuditMore bool // more than MaxAudit audit hits matched

	// AddTo lists the add_to actions of matched enforcing rules, in file
	// order. Decide does not change any set: the caller applies them with
	// ApplyAddTo once it acts on the verdict.
	AddTo  [MaxAddTo]AddTo
	NAddTo uint8
}

// Audits returns the recorded audit hits.
func (v *Verdict) Audits() []AuditHit { return v.Audit[:v.NAudit] }

// AddTos returns the recorded add_to actions.
func (v *Verdict) AddTos() []AddTo { return v.AddTo[:v.NAddTo] }

// StreamDir is the direction of stream bytes fed to an Inspector.
type StreamDir uint8

const (
	ToServer StreamDir = iota
	ToClient
)

// Hit is a payload rule that matched a flow's stream, or an HTTP request
// on a kept-alive connection that the http.* rules refuse.
type Hit struct {
	Rule    int
	RuleID  uint32
	Action  Action
	Reject  RejectKind // for http.* rules possibly RejectHTTP403
	Pattern string     // the configured pattern (payload hits), for logs
	// Field and Value: the L7 field that decided and its value, for an
	// HTTP request hit (FieldHTTPHost, ...), or FieldPayload with Value =
	// Pattern.
	Field L7Field
	Value string
	// Audit: the rule is in audit mode (or a drop/reject under [defaults]
	// mode = "audit"): log would-<Action>, keep the flow.
	Audit bool
}

// Decided is the field the hit decided on: inspectors that do not set
// Field report payload patterns.
func (h *Hit) Decided() L7Field {
	if h.Field == FieldNone && h.Pattern != "" {
		return FieldPayload
	}
	return h.Field
}

// LogValue is what a log line shows for the hit: the pattern of a payload
// hit, else the field's value.
func (h *Hit) LogValue() string {
	if (h.Field == FieldPayload || h.Value == "") && h.Pattern != "" {
		return h.Pattern
	}
	return h.Value
}

// L7Field names a field an L7 rule decides on.
type L7Field uint8

const (
	FieldNone       L7Field = iota
	FieldSNI                // tls.sni
	FieldHTTPHost           // http.host
	FieldHTTPMethod         // http.method
	FieldHTTPPath           // http.path
	FieldDNSQName           // dns.qname
	FieldPayload            // a payload pattern
)

// L7Need is a set of fields, one bit per L7Field.
type L7Need uint8

const (
	NeedSNI        L7Need = 1 << FieldSNI
	NeedHTTPHost   L7Need = 1 << FieldHTTPHost
	NeedHTTPMethod L7Need = 1 << FieldHTTPMethod
	NeedHTTPPath   L7Need = 1 << FieldHTTPPath
	NeedDNS        L7Need = 1 << FieldDNSQName
	NeedHTTP              = NeedHTTPHost | NeedHTTPMethod | NeedHTTPPath
)

// HTTP403Response is what the stack sends for RejectHTTP403 before
// closing the client connection.
const HTTP403Response = "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 10\r\nConnection: close\r\n\r\nForbidden\n"
