package stack

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tungate/tungate/policy"
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
}

// decisionLog writes decisions as one structured record per line, under a
// token bucket so a flood of new flows cannot flood the log.
type decisionLog struct {
	log        *slog.Logger
	suppressed *atomic.Uint64
	now        func() time.Time

	mu     sync.Mutex // guards the bucket: tokens, last, rate, burst
	tokens float64
	last   time.Time
	rate   float64 // tokens per second; <= 0 means unlimited
	burst  float64
}

func newDecisionLog(log *slog.Logger, suppressed *atomic.Uint64) *decisionLog {
	return &decisionLog{log: log, suppressed: suppressed, now: time.Now}
}

// setRate installs the budget of a (new) policy: "20/s" allows bursts of
// 20 and 20 lines per second after that. An unparsable rate (Compile
// rejects those) leaves logging unlimited rather than silent.
func (d *decisionLog) setRate(rate string) {
	r, err := policy.ParseRate(rate)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		d.rate = 0
		return
	}
	d.rate = r
	d.burst = max(r, 1)
	d.tokens = d.burst
	d.last = d.now()
}

// allow takes one token, counting the line as suppressed when there is
// none.
func (d *decisionLog) allow() bool {
	d.mu.Lock()
	if d.rate <= 0 {
		d.mu.Unlock()
		return true
	}
	now := d.now()
	d.tokens = min(d.burst, d.tokens+now.Sub(d.last).Seconds()*d.rate)
	d.last = now
	ok := d.tokens >= 1
	if ok {
		d.tokens--
	}
	d.mu.Unlock()
	if !ok {
		d.suppressed.Add(1)
	}
	return ok
}

// write emits r if the budget allows.
func (d *decisionLog) write(r *decisionRecord) {
	if d.log == nil || !d.allow() {
		return
	}
	attrs := [8]slog.Attr{
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
	d.log.LogAttrs(context.Background(), slog.LevelInfo, "decision", attrs[:n]...)
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
)
