package stack

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// decisionRecord is one decision before formatting. Building it costs
// nothing; formatting happens only after the rate limit admitted it.
type decisionRecord struct {
	rule     string
	action   string
	proto    uint8
	src, dst netip.AddrPort
	reason   string
	pattern  string // payload hits only
	// field and value: an L7 field that decided (attribute sni,
	// http_host, http_method, http_path or dns_qname) and its value.
	field, value string
}

// decisionLog writes decisions as one structured record per line, under a
// token bucket so a flood of new flows cannot flood the log. Lines the
// bucket refuses are counted per rule and summarised periodically
// (flushSuppressed), so an operator learns what the budget hid; the
// decisions themselves (drops included) are never affected.
type decisionLog struct {
	log        *slog.Logger
	suppressed *atomic.Uint64
	budget     *bucket

	mu     sync.Mutex        // guards byRule
	byRule map[string]uint64 // lines suppressed since the last summary, by rule name
}

// suppressedEvery is how often flushSuppressed runs under Stack.Run.
const suppressedEvery = 10 * time.Second

// maxSuppressedRules bounds byRule; rule names are bounded by the config,
// but names from past policies accumulate until the next summary.
const maxSuppressedRules = 4096

func newDecisionLog(log *slog.Logger, suppressed *atomic.Uint64, now func() time.Time) *decisionLog {
	return &decisionLog{log: log, suppressed: suppressed, budget: newBucket(now), byRule: make(map[string]uint64)}
}

// setRate installs a (new) policy's [log] budget: rate lines per second,
// bursts of burst. A rate <= 0 leaves logging unlimited rather than silent.
func (d *decisionLog) setRate(rate float64, burst int) { d.budget.set(rate, burst) }

// allow takes one token, counting the line as suppressed for rule when
// there is none.
func (d *decisionLog) allow(rule string) bool {
	if d.budget.take() {
		return true
	}
	d.suppressed.Add(1)
	d.mu.Lock()
	if _, ok := d.byRule[rule]; ok || len(d.byRule) < maxSuppressedRules {
		d.byRule[rule]++
	}
	d.mu.Unlock()
	return false
}

// write emits r if the budget allows.
func (d *decisionLog) write(r *decisionRecord) {
	if d.log == nil || !d.allow(r.rule) {
		return
	}
	attrs := [9]slog.Attr{
		slog.String("rule", r.rule),
		slog.String("action", r.action),
		slog.String("proto", protoName(r.proto)),
		slog.String("src", r.src.String()),
		slog.String("dst", r.dst.String()),
		slog.String("reason", r.reason),
	}
	n := 6
	if r.pattern != "" {
		attrs[n] = slog.String("pattern", r.pattern)
		n++
	}
	if r.field != "" {
		attrs[n] = slog.String(r.field, r.value)
		n++
	}
	d.log.LogAttrs(context.Background(), slog.LevelInfo, "decision", attrs[:n]...)
}

// flushSuppressed writes one "decisions suppressed" line per rule whose
// lines the budget refused since the last call, and resets the counts.
// The summary itself is not rate limited: it has one line per rule.
func (d *decisionLog) flushSuppressed() {
	d.mu.Lock()
	if len(d.byRule) == 0 {
		d.mu.Unlock()
		return
	}
	counts := d.byRule
	d.byRule = make(map[string]uint64, len(counts))
	d.mu.Unlock()
	if d.log == nil {
		return
	}
	rules := make([]string, 0, len(counts))
	for r := range counts {
		rules = append(rules, r)
	}
	slices.Sort(rules)
	for _, r := range rules {
		d.log.LogAttrs(context.Background(), slog.LevelWarn, "decisions suppressed",
			slog.String("rule", r), slog.Uint64("count", counts[r]))
	}
}

func protoName(p uint8) string {
	switch p {
	case protoTCP:
		return "tcp"
	case protoUDP:
		return "udp"
	case protoICMP:
		return "icmp"
	case protoICMPv6:
		return "icmpv6"
	}
	return "other"
}

// Reasons written in the decision log.
const (
	reasonRule      = "rule"         // a rule matched
	reasonDefault   = "default"      // no rule matched: defaults.policy
	reasonInvalid   = "invalid"      // conntrack INVALID: defaults.invalid
	reasonPayload   = "payload"      // an armed payload rule matched the stream
	reasonAudit     = "audit"        // would have been dropped; audit mode passes it
	reasonTableFull = "table_full"   // allowed, but conntrack had no room
	reasonLogRule   = "log_rule"     // an action="log" rule matched on the way
	reasonSrcLimit  = "source_limit" // allowed, but the source has too many flows
	reasonRecheck   = "recheck"      // a reload's policy no longer allows this tracked flow
	reasonFlush     = "flush"        // an add_to flush_flows ended the address's flows
	reasonRateLimit = "reject_rate"  // a reject answered with a drop: [reject] max_rate exceeded
	reasonL7        = "l7"           // a pending flow decided on its TLS SNI or HTTP request head
	reasonHTTP      = "http_request" // a later request of a kept-alive HTTP connection was refused
	reasonDNS       = "dns"          // one DNS query decided on its name
)
