package l7gate

import (
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/tungate/tungate/conntrack"
	"github.com/tungate/tungate/policy"
	"github.com/tungate/tungate/stack/relay"
	"github.com/tungate/tungate/stack/verdict"
)

// Dialer opens upstream TCP connections (egress.Dialer in production).
type Dialer interface {
	DialTCP(ctx context.Context, dst netip.AddrPort) (*net.TCPConn, error)
}

// Gate serves inspected flows. It is safe for concurrent use.
type Gate struct {
	apply       *verdict.Applier
	dial        Dialer
	dialTimeout time.Duration
}

// New returns a Gate that reports decisions to a and dials through d.
func New(a *verdict.Applier, d Dialer, dialTimeout time.Duration) *Gate {
	return &Gate{apply: a, dial: d, dialTimeout: dialTimeout}
}

// dialUpstream dials the destination of key within the dial timeout.
func (g *Gate) dialUpstream(ctx context.Context, key *conntrack.Key) (*net.TCPConn, error) {
	ctx, cancel := context.WithTimeout(ctx, g.dialTimeout)
	defer cancel()
	return g.dial.DialTCP(ctx, key.DstAddrPort())
}

// Inspection returns the inspector of an allowed flow's armed payload
// rules and per-request HTTP checks (nil when none are armed), and the
// relay's hit handler.
func (g *Gate) Inspection(pol *policy.Policy, f *policy.Flow, v policy.Verdict, key conntrack.Key, cc *ClientConn) (relay.Inspector, relay.HitHandler) {
	var ins relay.Inspector
	if in := pol.NewInspector(f, v); in != nil {
		ins = &auditing{in: in, g: g, pol: pol, key: key}
	}
	return ins, &hits{g: g, pol: pol, key: key, cc: cc}
}

// hits is the relay's HitHandler: the hit is applied (cached, logged),
// and the client's end becomes a 403 answer when the rule asks for one.
type hits struct {
	g   *Gate
	pol *policy.Policy
	key conntrack.Key
	cc  *ClientConn
}

func (h *hits) OnHit(hit policy.Hit) {
	h.g.applyHit(verdict.StageHit, h.pol, &hit, h.key)
	if hit.Action == policy.ActionReject && hit.Reject == policy.RejectHTTP403 {
		h.cc.answerForbidden()
	}
}

// applyHit hands a stream hit to the Applier.
func (g *Gate) applyHit(stage verdict.Stage, pol *policy.Policy, h *policy.Hit, key conntrack.Key) {
	g.apply.Apply(&verdict.Decision{Stage: stage, Policy: pol, Hit: h, Key: key})
}

// auditing keeps audit-mode hits from the relay, which ends the flow on
// every drop or reject hit: they are applied as audits and the flow goes
// on.
type auditing struct {
	in  *policy.Inspector
	g   *Gate
	pol *policy.Policy
	key conntrack.Key
}

func (a *auditing) Feed(dir policy.StreamDir, data []byte) (policy.Hit, bool) {
	h, ok := a.in.Feed(dir, data)
	if ok && h.Audit {
		a.g.applyHit(verdict.StageAudit, a.pol, &h, a.key)
		return policy.Hit{}, false
	}
	return h, ok
}

func (a *auditing) Done() bool { return a.in.Done() }

var (
	_ relay.Inspector  = (*auditing)(nil)
	_ relay.HitHandler = (*hits)(nil)
)
