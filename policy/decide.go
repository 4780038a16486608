package policy

// Decide returns the verdict for a packet, normally a new flow's first: the
// first rule, in file order, whose conditions all hold and that is
// terminal. Along the way payload rules whose L3/L4 part matches are armed
// (Verdict.Armed), action="log" rules record LogRule, audit-mode rules
// record an audit hit, and add_to actions of matched rules are recorded;
// evaluation continues past all of those. A packet with CtState invalid
// that no rule matches gets defaults.invalid, any other defaults.policy.
//
// Decide changes no set (see ApplyAddTo) but does take tokens from the
// limits of rules it evaluates to the end, so call it once per packet.
// It allocates nothing.
func (p *Policy) Decide(f *Flow) Verdict {
	v := Verdict{Rule: -1, LogRule: -1}
	var in matchIn
	p.prepare(f, &in)
	armed := false
	c := p.candidates(f.Proto, f.DstPort)
	for {
		ri, ok := c.next()
		if !ok {
			break
		}
		r := &p.rules[ri]
		if r.firstFail(&in) != condNone {
			continue
		}
		if r.limit != nil && !r.limit.match(r.limitKey(&in), in.clk.get()) {
			continue
		}
		if r.payload != nil {
			armed = true
			continue
		}
		if r.audit {
			v.addAudit(ri, r.id, r.action)
			continue
		}
		if r.addTo != nil {
			v.addAddTo(ri, r.addTo, &in)
		}
		if r.isLog {
			if v.LogRule < 0 {
				v.LogRule = int(ri)
			}
			continue
		}
		v.Action, v.Rule, v.RuleID = r.action, int(ri), r.id
		v.Log = r.log
		p.finish(&v, f.Proto, r.reject, armed)
		return v
	}
	v.Action = p.defAction
	if f.CtState == CtInvalid {
		v.Action = p.invalid
	}
	if p.mode == ModeAudit && v.Action != ActionAllow {
		v.addAudit(-1, 0, v.Action)
		v.Action = ActionAllow
	}
	p.finish(&v, f.Proto, p.defReject, armed)
	return v
}

func (v *Verdict) addAudit(rule int32, id uint32, a Action) {
	if int(v.NAudit) == len(v.Audit) {
		v.AuditMore = true
		return
	}
	v.Audit[v.NAudit] = AuditHit{Rule: rule, RuleID: id, Action: a}
	v.NAudit++
}

func (v *Verdict) addAddTo(rule int32, a *addToAction, in *matchIn) {
	if int(v.NAddTo) == len(v.AddTo) {
		return
	}
	addr := in.src
	if !a.src {
		addr = in.dst
	}
	v.AddTo[v.NAddTo] = AddTo{Rule: rule, Set: a.name, Addr: addr, IsSrc: a.src, Flush: a.flush}
	v.NAddTo++
}

// finish resolves the reject kind, the log decision and the armed flag,
// which depend only on the final action.
func (p *Policy) finish(v *Verdict, proto uint8, rw rejectWith, armed bool) {
	switch v.Action {
	case ActionReject:
		v.Reject = resolveReject(rw, proto)
		v.Log = v.Log || p.decisions != decisionsNone
	case ActionDrop:
		v.Log = v.Log || p.decisions != decisionsNone
	default:
		v.Log = v.Log || p.decisions == decisionsAll
		v.Armed = armed
	}
}

// resolveReject turns reject_with into what the stack sends. A TCP reset
// cannot answer a non-TCP flow (only possible through defaults.reject_with),
// so those get ICMP port unreachable instead.
func resolveReject(rw rejectWith, proto uint8) RejectKind {
	switch {
	case rw == rejectWithICMP:
		return RejectICMPPortUnreachable
	case rw == rejectWithAdmin:
		return RejectICMPAdminProhibited
	case proto == 6:
		return RejectTCPReset
	}
	return RejectICMPPortUnreachable
}

// ApplyAddTo performs the add_to actions recorded in v: each address goes
// into its dynamic set for the set's timeout. It returns the actions that
// asked for flush_flows, for the caller to tear down through conntrack
// (source flows of Addr when IsSrc, else destination flows). Sets that are
// full refuse the addition (counted, see SetStats). Call it once per
// verdict the caller acts on; it allocates only when a set grows.
func (p *Policy) ApplyAddTo(v *Verdict) (flush [MaxAddTo]AddTo, n int) {
	for _, a := range v.AddTos() {
		r := &p.rules[a.Rule]
		if r.addTo == nil {
			continue
		}
		_ = r.addTo.set.add(a.Addr, p.now(), 0)
		if a.Flush {
			flush[n] = a
			n++
		}
	}
	return flush, n
}

// CountVerdict counts a decided flow: the deciding rule (or the default)
// and every audit hit, so audit rules show how much they would have
// matched.
func (p *Policy) CountVerdict(v *Verdict) {
	p.CountFlow(v.Rule)
	for _, h := range v.Audits() {
		if h.Rule >= 0 { // a default audit hit is the deciding default, counted above
			p.CountFlow(int(h.Rule))
		}
	}
}
