package decisionlog

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// SummaryEvery is how often the owner of a Log should call
// FlushSuppressed: often enough that an operator soon learns what the
// budget hid, seldom enough that the summaries are no flood themselves.
const SummaryEvery = 10 * time.Second

// maxSuppressedRules bounds the per-rule counts. Rule names are bounded
// by the config, but names from past policies pile up until the next
// summary.
const maxSuppressedRules = 4096

// Log writes decisions as one structured line each, under a token bucket,
// so that a flood of new flows cannot flood the log. Lines the bucket
// refuses are counted per rule and summarised by FlushSuppressed.
type Log struct {
	log        *slog.Logger // nil: discard everything, spend and count nothing
	budget     *Bucket
	suppressed atomic.Uint64 // lines refused by budget, ever

	mu     sync.Mutex        // guards byRule
	byRule map[string]uint64 // lines refused since the last summary, by rule name
}

// New returns a Log writing to log (nil: nowhere) with an unlimited
// budget until SetRate; now reads the budget's clock (nil: time.Now).
func New(log *slog.Logger, now func() time.Time) *Log {
	return &Log{log: log, budget: NewBucket(now), byRule: make(map[string]uint64)}
}

// SetRate installs a (new) policy's [log] budget: rate lines per second,
// in bursts of up to burst. A rate <= 0 leaves logging unlimited rather
// than silent. What was spent carries over, as Bucket.Set explains.
func (l *Log) SetRate(rate float64, burst int) { l.budget.Set(rate, burst) }

// Suppressed is the number of lines the budget has refused so far.
func (l *Log) Suppressed() uint64 { return l.suppressed.Load() }

// Write writes r if the budget admits it. The budget is asked first, so a
// refused line costs no formatting and no allocation.
func (l *Log) Write(r *Record) {
	if l.log == nil || !l.admit(r.Rule) {
		return
	}
	// Fixed order, optional attributes last: parsers of the log, the
	// end-to-end tests among them, depend on it.
	attrs := [9]slog.Attr{
		slog.String("rule", r.Rule),
		slog.String("action", r.Action),
		slog.String("proto", ProtoName(r.Proto)),
		slog.String("src", r.Src.String()),
		slog.String("dst", r.Dst.String()),
		slog.String("reason", r.Reason),
	}
	n := 6
	if r.Pattern != "" {
		attrs[n] = slog.String("pattern", r.Pattern)
		n++
	}
	if r.Field != "" {
		attrs[n] = slog.String(r.Field, r.Value)
		n++
	}
	l.log.LogAttrs(context.Background(), slog.LevelInfo, "decision", attrs[:n]...)
}

// admit takes one token, or counts the line as suppressed for rule when
// there is none.
func (l *Log) admit(rule string) bool {
	if l.budget.Take() {
		return true
	}
	l.suppressed.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.byRule[rule]; ok || len(l.byRule) < maxSuppressedRules {
		l.byRule[rule]++
	}
	return false
}

// FlushSuppressed writes one "decisions suppressed" line per rule whose
// lines the budget refused since the last call, in rule order, and starts
// counting afresh. The summary itself is not rate limited: it has at most
// one line per rule.
func (l *Log) FlushSuppressed() {
	l.mu.Lock()
	if len(l.byRule) == 0 {
		l.mu.Unlock()
		return
	}
	counts := l.byRule
	l.byRule = make(map[string]uint64, len(counts))
	l.mu.Unlock()
	if l.log == nil {
		return
	}
	rules := make([]string, 0, len(counts))
	for r := range counts {
		rules = append(rules, r)
	}
	slices.Sort(rules)
	for _, r := range rules {
		l.log.LogAttrs(context.Background(), slog.LevelWarn, "decisions suppressed",
			slog.String("rule", r), slog.Uint64("count", counts[r]))
	}
}
