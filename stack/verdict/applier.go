package verdict

import (
	"context"
	"log/slog"
	"time"

	"github.com/tungate/tungate/conntrack"
	"github.com/tungate/tungate/policy"
	"github.com/tungate/tungate/stack/decisionlog"
)

// Applier carries out decisions. It is safe for concurrent use.
type Applier struct {
	ct      *conntrack.Table
	flows   *Flows
	dlog    *decisionlog.Log
	log     *slog.Logger // operational lines (flushes)
	rejects *decisionlog.Bucket
	flushes *flushQueue
	ctr     Counters
}

// Options are an Applier's dependencies.
type Options struct {
	Conntrack *conntrack.Table
	Flows     *Flows           // the records conntrack's OnDestroy keeps in step
	Decisions *decisionlog.Log // decision lines
	Log       *slog.Logger     // operational lines; nil discards
	Now       func() time.Time // the reject budget's clock; nil: time.Now
}

// New returns an Applier. Call SetPolicy before the first Apply.
func New(o Options) *Applier {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Applier{
		ct:      o.Conntrack,
		flows:   o.Flows,
		dlog:    o.Decisions,
		log:     log,
		rejects: decisionlog.NewBucket(o.Now),
		flushes: newFlushQueue(),
	}
}

// SetPolicy installs a (new) policy's budgets: decision lines per second
// and [reject] max_rate. A reload changes the rates without refilling
// what was spent.
func (a *Applier) SetPolicy(p *policy.Policy) {
	a.dlog.SetRate(p.LogRate())
	r := p.RejectMaxRate()
	a.rejects.Set(r, max(int(r), 1))
}

// Counters returns the live counters.
func (a *Applier) Counters() *Counters { return &a.ctr }

// Flows returns the per-flow records.
func (a *Applier) Flows() *Flows { return a.flows }

// Run serves add_to flush requests until ctx is done.
func (a *Applier) Run(ctx context.Context) { a.runFlusher(ctx) }

// Apply carries out d's verdict and every side effect it implies at d's
// stage, and returns what the caller must do. Each side effect has one
// step below, in the order an operator reads them: the log rule met on
// the way, audit hits, rule counters, add_to, the flow's state in
// conntrack, its L7 record, the decision line, and the outcome counters.
// A new side effect is one more step here.
func (a *Applier) Apply(d *Decision) Outcome {
	if d.Stage == StageResume && d.Verdict.Field == policy.FieldNone {
		// An L3/L4 rule after the pending one decided: the line still
		// says what was read.
		d.Verdict.Field, d.Verdict.Value = d.Read, d.ReadValue
	}
	a.logRuleLine(d)
	a.auditLines(d)
	a.countRules(d)
	a.applyAddTo(d)
	out, refused := a.enforce(d)
	a.recordL7(d)
	if !refused {
		a.decisionLine(d)
	}
	a.countOutcome(d)
	return out
}

// FlowL7 returns what inspection recorded about the flow with
// original-direction key k, for the control socket's listing.
func (a *Applier) FlowL7(k conntrack.Key) (L7Info, bool) {
	if fl := a.flows.Get(k); fl != nil {
		return fl.L7()
	}
	return L7Info{}, false
}
