package verdict

import (
	"errors"

	"github.com/tungate/tungate/conntrack"
	"github.com/tungate/tungate/policy"
	"github.com/tungate/tungate/stack/decisionlog"
	"github.com/tungate/tungate/stack/packet"
)

// The steps of Apply, one per side effect. Each says which stages it
// concerns; the others pass through it untouched.

// logRuleLine writes the line of a matched action = "log" rule: on a
// flow's first packet, on each DNS query, and on a pending flow's final
// verdict when its first packet met none.
func (a *Applier) logRuleLine(d *Decision) {
	v := &d.Verdict
	switch d.Stage {
	case StageNew, StageInvalid, StageQuery:
	case StageResume:
		if d.Prior.LogRule >= 0 {
			return
		}
	default:
		return
	}
	if v.LogRule >= 0 {
		a.line(d.Policy.RuleNameAt(v.LogRule), "log", &d.Key, decisionlog.ReasonLogRule, policy.FieldNone, "")
	}
}

// auditLines writes one would-<action> line per audit hit the decision
// adds: all of them at a first packet or a DNS query, those after the
// first packet's at a pending flow's final verdict, and a stream's audit
// hit.
func (a *Applier) auditLines(d *Decision) {
	var hits []policy.AuditHit
	field, value := policy.FieldNone, ""
	switch d.Stage {
	case StageNew, StageInvalid:
		hits = d.Verdict.Audits()
	case StageResume:
		hits = newAudits(d)
	case StageQuery:
		hits = d.Verdict.Audits()
		if len(hits) > 0 {
			field, value = policy.FieldDNSQName, d.queryName()
		}
	case StageAudit:
		h := d.Hit
		a.ctr.AuditHits.Add(1)
		a.line(d.Policy.RuleNameAt(h.Rule), wouldName(h.Action), &d.Key, decisionlog.ReasonAudit, h.Decided(), h.LogValue())
		return
	}
	for _, h := range hits {
		a.ctr.AuditHits.Add(1)
		a.line(d.Policy.RuleNameAt(int(h.Rule)), wouldName(h.Action), &d.Key, decisionlog.ReasonAudit, field, value)
	}
}

// newAudits are the audit hits of a pending flow's final verdict that its
// first packet's verdict did not have.
func newAudits(d *Decision) []policy.AuditHit {
	all := d.Verdict.Audits()
	return all[min(int(d.Prior.NAudit), len(all)):]
}

// countRules counts the flow (and packet) against the rules that decided
// or audited it, each flow once: at its first packet, and for what a
// pending flow's final verdict or a DNS query adds.
func (a *Applier) countRules(d *Decision) {
	pol, v := d.Policy, &d.Verdict
	switch d.Stage {
	case StageNew, StageInvalid:
		pol.CountVerdict(v)
		pol.CountPacket(v.Rule, d.Packet.Len)
	case StageResume:
		if v.Rule != d.Prior.Rule {
			pol.CountFlow(v.Rule)
		}
		countAudits(pol, newAudits(d))
	case StageQuery:
		countAudits(pol, v.Audits())
		if v.Field != policy.FieldNone {
			// A query a dns rule decided counts as one flow of that rule.
			pol.CountFlow(v.Rule)
		}
	}
}

func countAudits(pol *policy.Policy, hits []policy.AuditHit) {
	for _, h := range hits {
		if h.Rule >= 0 { // a default audit hit is the deciding default, counted already
			pol.CountFlow(int(h.Rule))
		}
	}
}

// applyAddTo adds the decision's add_to addresses to their dynamic sets,
// and hands flush_flows requests to the flusher (off the packet path).
func (a *Applier) applyAddTo(d *Decision) {
	v := &d.Verdict
	switch d.Stage {
	case StageNew, StageInvalid:
		if v.NAddTo == 0 {
			return
		}
		flush, n := d.Policy.ApplyAddTo(v)
		a.queueFlushes(flush[:n])
	case StageResume:
		if v.NAddTo <= d.Prior.NAddTo {
			return
		}
		rest := *v
		rest.NAddTo = uint8(copy(rest.AddTo[:], v.AddTo[d.Prior.NAddTo:v.NAddTo]))
		flush, n := d.Policy.ApplyAddTo(&rest)
		a.queueFlushes(flush[:n])
	}
}

// enforce puts the decision into the flow's state: a first packet that is
// allowed is committed to conntrack (with its record), later stages set
// the cached verdict, a recheck that no longer allows a flow ends it. It
// returns the outcome, and refused when an allowed flow could not be
// committed (already logged and counted).
func (a *Applier) enforce(d *Decision) (out Outcome, refused bool) {
	v := &d.Verdict
	switch d.Stage {
	case StageNew:
		if v.Action == policy.ActionAllow {
			return a.commit(d)
		}
		return a.refusal(d), false
	case StageInvalid, StageInvalidDefault:
		if v.Action == policy.ActionAllow {
			return Pass, false
		}
		return a.refusal(d), false
	case StageResume:
		a.setVerdict(d.Key, v.Action, v.RuleID)
		return passIf(v.Action), false
	case StageQuery:
		if v.Action == policy.ActionAllow {
			if fl := a.flows.Get(d.Key); fl != nil && fl.nameOnce() && v.RuleID != d.Prior.RuleID {
				// The flow's cached verdict names the rule that allowed
				// its first query, not the dns rule it was pending at.
				a.setVerdict(d.Key, policy.ActionAllow, v.RuleID)
			}
		}
		return passIf(v.Action), false
	case StageHit:
		// The verdict is cached before the relay resets the peers, so the
		// log and conntrack agree with what they observe.
		a.ctr.PayloadHits.Add(1)
		a.setVerdict(d.Key, d.Hit.Action, d.Hit.RuleID)
		if fl := a.flows.Get(d.Key); fl != nil {
			fl.markEnded()
		}
		return Drop, false
	case StageRecheck:
		if v.Action == policy.ActionAllow {
			if v.RuleID != d.Prior.RuleID {
				// Count the flow's packets against the rule that allows it now.
				a.setVerdict(d.Key, policy.ActionAllow, v.RuleID)
			}
			return Pass, false
		}
		a.setVerdict(d.Key, v.Action, v.RuleID)
		if fl := a.flows.Get(d.Key); fl != nil {
			fl.end()
		}
		a.ctr.RecheckTeardowns.Add(1)
		return Drop, false
	}
	return Pass, false
}

func passIf(act policy.Action) Outcome {
	if act == policy.ActionAllow {
		return Pass
	}
	return Drop
}

// commit commits an allowed first packet and opens its record. An
// inspected or pending TCP flow keeps its verdict there for the forwarder
// handler, and a UDP flow pending on dns.qname for its whole life. The
// record is opened only once the commit succeeded: a commit that reopens
// a closed connection destroys the old flow's record first.
func (a *Applier) commit(d *Decision) (Outcome, bool) {
	v := &d.Verdict
	err := a.ct.Commit(d.Packet, conntrack.Verdict{Action: uint8(policy.ActionAllow), Rule: v.RuleID})
	if err != nil {
		a.ctr.CommitFailures.Add(1)
		if d.Policy.Log().Decisions != "none" {
			reason := decisionlog.ReasonTableFull
			if errors.Is(err, conntrack.ErrSourceLimit) {
				reason = decisionlog.ReasonSourceLimit
			}
			a.line(d.Policy.RuleNameAt(v.Rule), policy.ActionDrop.String(), &d.Key, reason, policy.FieldNone, "")
		}
		return Drop, true
	}
	var armed *Armed
	tcp, udp := d.Key.Proto == packet.ProtoTCP, d.Key.Proto == packet.ProtoUDP
	keepDNS := v.Pending && udp
	if ((v.Armed || v.Pending) && tcp) || keepDNS {
		armed = &Armed{Policy: d.Policy, Verdict: *v}
	}
	a.flows.open(d.Key, armed, keepDNS)
	a.ctr.NewFlows.Add(1)
	if d.EchoRequest {
		return Echo, false
	}
	return Pass, false
}

// refusal is the outcome of a packet the rules drop or reject: a reject
// is answered as its kind says, or dropped when [reject] max_rate is
// exhausted. RejectNone (defaults.invalid = "reject") answers TCP with a
// reset and anything else with port unreachable.
func (a *Applier) refusal(d *Decision) Outcome {
	v := &d.Verdict
	if v.Action != policy.ActionReject {
		return Drop
	}
	if !a.rejects.Take() {
		a.ctr.RejectsLimited.Add(1)
		return Drop
	}
	switch {
	case v.Reject == policy.RejectICMPAdminProhibited:
		return RejectAdmin
	case d.Key.Proto == packet.ProtoTCP && (v.Reject == policy.RejectTCPReset || v.Reject == policy.RejectNone):
		return RejectTCP
	}
	return RejectICMP
}

func (a *Applier) setVerdict(k conntrack.Key, act policy.Action, rule uint32) {
	a.ct.SetVerdict(k, conntrack.Verdict{Action: uint8(act), Rule: rule})
}

// recordL7 records, for the operator's listing, the L7 field a decision
// read and the rule that decided on it.
func (a *Applier) recordL7(d *Decision) {
	var fl *Flow
	switch d.Stage {
	case StageResume, StageQuery, StageHit:
		if fl = a.flows.Get(d.Key); fl == nil {
			return
		}
	default:
		return
	}
	pol, v := d.Policy, &d.Verdict
	switch d.Stage {
	case StageResume:
		if d.Read != policy.FieldNone {
			fl.recordFirst(d.Read, d.ReadValue)
		}
		if v.Field != policy.FieldNone && v.Field != policy.FieldPayload {
			fl.record(v.Field, v.Value, pol.RuleNameAt(v.Rule), v.Action.String())
		}
	case StageQuery:
		if v.Action != policy.ActionAllow {
			fl.record(policy.FieldDNSQName, d.queryName(), pol.RuleNameAt(v.Rule), v.Action.String())
		} else if d.Name != nil && !fl.hasDNSName() {
			fl.recordFirst(policy.FieldDNSQName, string(d.Name))
		}
	case StageHit:
		if f := d.Hit.Decided(); f != policy.FieldPayload && f != policy.FieldNone {
			fl.record(f, d.Hit.Value, pol.RuleNameAt(d.Hit.Rule), d.Hit.Action.String())
		}
	}
}

// decisionLine writes the decision's own line, when the rule or [log]
// decisions asks for it (a stream hit always: it ends a flow the peers
// saw open).
func (a *Applier) decisionLine(d *Decision) {
	pol, v := d.Policy, &d.Verdict
	switch d.Stage {
	case StageNew:
		if v.Log {
			reason := decisionlog.ReasonRule
			if v.Rule < 0 {
				reason = decisionlog.ReasonDefault
			}
			a.line(pol.RuleNameAt(v.Rule), v.Action.String(), &d.Key, reason, policy.FieldNone, "")
		}
	case StageInvalid:
		if v.Log {
			name := ""
			if v.Rule >= 0 {
				name = pol.RuleNameAt(v.Rule)
			}
			a.line(name, v.Action.String(), &d.Key, decisionlog.ReasonInvalid, policy.FieldNone, "")
		}
	case StageInvalidDefault:
		if dec := pol.Log().Decisions; (v.Action != policy.ActionAllow && dec != "none") || dec == "all" {
			a.line("", v.Action.String(), &d.Key, decisionlog.ReasonInvalid, policy.FieldNone, "")
		}
	case StageResume:
		if v.Log {
			a.line(pol.RuleNameAt(v.Rule), v.Action.String(), &d.Key, decisionlog.ReasonL7, v.Field, v.Value)
		}
	case StageQuery:
		if v.Log {
			a.line(pol.RuleNameAt(v.Rule), v.Action.String(), &d.Key, decisionlog.ReasonDNS, policy.FieldDNSQName, d.queryName())
		}
	case StageHit:
		h := d.Hit
		reason := decisionlog.ReasonPayload
		if h.Decided() != policy.FieldPayload {
			reason = decisionlog.ReasonHTTPRequest
		}
		a.line(pol.RuleNameAt(h.Rule), h.Action.String(), &d.Key, reason, h.Decided(), h.LogValue())
	case StageRecheck:
		if v.Action != policy.ActionAllow {
			a.line(pol.RuleNameAt(v.Rule), v.Action.String(), &d.Key, decisionlog.ReasonRecheck, policy.FieldNone, "")
		}
	}
}

// countOutcome counts the flows the policy refused.
func (a *Applier) countOutcome(d *Decision) {
	switch d.Stage {
	case StageNew, StageInvalid, StageInvalidDefault, StageResume:
	default:
		return
	}
	switch d.Verdict.Action {
	case policy.ActionReject:
		a.ctr.PolicyRejects.Add(1)
	case policy.ActionDrop:
		if d.Stage == StageNew || d.Stage == StageResume {
			a.ctr.PolicyDrops.Add(1)
		}
	}
}

// line writes one decision line about the flow direction k; field and
// value name the L7 field (or payload pattern) that decided, if any.
func (a *Applier) line(rule, action string, k *conntrack.Key, reason string, field policy.L7Field, value string) {
	r := decisionlog.Record{
		Rule:   rule,
		Action: action,
		Proto:  k.Proto,
		Src:    k.SrcAddrPort(),
		Dst:    k.DstAddrPort(),
		Reason: reason,
	}
	if field == policy.FieldPayload {
		r.Pattern = value
	} else if key := field.LogKey(); key != "" {
		r.Field, r.Value = key, value
	}
	a.dlog.Write(&r)
}

// queryName is a DNS query's name for the log and the record: the
// verdict's value when DecideDNS set it, else the parsed name, made a
// string once and only when something needs it.
func (d *Decision) queryName() string {
	if d.Verdict.Value == "" && d.Name != nil {
		d.Verdict.Value = string(d.Name)
	}
	return d.Verdict.Value
}

// wouldName is the logged action of an audit hit.
func wouldName(a policy.Action) string {
	switch a {
	case policy.ActionAllow:
		return "would-allow"
	case policy.ActionReject:
		return "would-reject"
	}
	return "would-drop"
}
