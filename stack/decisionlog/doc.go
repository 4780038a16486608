// Package decisionlog writes the gateway's policy decisions, one
// structured "decision" line each, under a token-bucket budget, and
// summarises per rule the lines the budget refused.
//
// It owns the line format (message, attribute names and order), the
// budget, and the reason vocabulary. It must not know where a decision
// came from: callers hand it a finished Record of plain strings and
// addresses, never a packet, a conntrack key or a policy. The decisions
// themselves, drops included, never depend on what it writes or refuses.
package decisionlog
