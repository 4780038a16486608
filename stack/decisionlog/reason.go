package decisionlog

// Reasons a Record gives for its decision: the "reason" attribute.
const (
	ReasonRule        = "rule"         // a rule matched
	ReasonDefault     = "default"      // no rule matched: defaults.policy
	ReasonInvalid     = "invalid"      // conntrack INVALID: defaults.invalid
	ReasonPayload     = "payload"      // an armed payload rule matched the stream
	ReasonAudit       = "audit"        // would have been dropped; audit mode passes it
	ReasonTableFull   = "table_full"   // allowed, but conntrack had no room
	ReasonLogRule     = "log_rule"     // an action="log" rule matched on the way
	ReasonSourceLimit = "source_limit" // allowed, but the source has too many flows
	ReasonRecheck     = "recheck"      // a reload's policy no longer allows this tracked flow
	ReasonFlush       = "flush"        // an add_to flush_flows ended the address's flows
	ReasonRejectRate  = "reject_rate"  // a reject answered with a drop: [reject] max_rate exceeded
	ReasonL7          = "l7"           // a pending flow decided on its TLS SNI or HTTP request head
	ReasonHTTPRequest = "http_request" // a later request of a kept-alive HTTP connection was refused
	ReasonDNS         = "dns"          // one DNS query decided on its name
)
