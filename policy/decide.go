package policy

// Decide returns the verdict for a packet, normally a new flow's first: the
// first rule, in file order, whose conditions all hold and that is
// terminal. Along the way payload rules whose L3/L4 part matches are armed
// (Verdict.Armed), action="log" rules record LogRule, audit-mode rules
// record an audit hit, and add_to actions of matched rules are recorded;
// evaluation continues past all of those. A packet with CtState invalid
// that no rule matches gets defaults.invalid, any other defaults.policy.
//
// A rule with tls/http/dns keys whose L3/L4 part matches stops the walk:
// the verdict is Pending at that rule (see Verdict.Pending, Resume,
// DecideDNS). Rules before it decide without waiting.
//
// Decide changes no set (see ApplyAddTo) but does take tokens from the
// limits of rules it evaluates to the end, so call it once per packet.
// It allocates nothing.
func (p *Policy) Decide(f *Flow) Verdict {
	v := Verdict{Rule: -1, LogRule: -1}
	p.walk(f, &v, 0, nil, evalDecide)
	return v
}

// evalMode says what a walk over the rules knows and may change.
type evalMode uint8

const (
	evalDecide  evalMode = iota // no L7 fields yet: an L7 rule makes the flow pending
	evalResume                  // the flow's fields are known: its final verdict
	evalRecheck                 // a later HTTP request or a DNS query: limits are peeked, add_to not recorded
)

// walk evaluates the rules from index from on. fields is nil in
// evalDecide.
func (p *Policy) walk(f *Flow, v *Verdict, from int32, fields *L7Fields, mode evalMode) {
	var in matchIn
	p.prepare(f, &in)
	armed := v.Armed
	c := p.candidates(f.Proto, f.DstPort)
	for {
		ri, ok := c.next()
		if !ok {
			break
		}
		if ri < from {
			continue
		}
		r := &p.rules[ri]
		if r.firstFail(&in) != condNone {
			continue
		}
		if r.limit != nil {
			if mode == evalRecheck {
				if !r.limit.peek(r.limitKey(&in), in.clk.get()) {
					continue
				}
			} else if !r.limit.match(r.limitKey(&in), in.clk.get()) {
				continue
			}
		}
		if r.payload != nil {
			armed = true
			continue
		}
		field := FieldNone
		if r.l7 != nil {
			if mode == evalDecide {
				v.Action, v.Rule, v.RuleID = ActionAllow, int(ri), r.id
				v.Pending, v.at, v.Armed = true, ri+1, armed
				v.Need = r.l7.need | p.needAfter(c, &in)
				return
			}
			var ok bool
			if ok, field = r.l7.match(fields); !ok {
				continue
			}
		}
		if r.audit {
			v.addAudit(ri, r.id, r.action)
			continue
		}
		if r.addTo != nil && mode != evalRecheck {
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
		v.Field = field
		p.finish(v, f.Proto, r.reject, armed)
		return
	}
	v.Action, v.Rule, v.RuleID = p.defAction, -1, 0
	if f.CtState == CtInvalid {
		v.Action = p.invalid
	}
	if p.mode == ModeAudit && v.Action != ActionAllow {
		v.addAudit(-1, 0, v.Action)
		v.Action = ActionAllow
	}
	p.finish(v, f.Proto, p.defReject, armed)
}

// needAfter is the union of the fields the L7 rules left in c need, of
// those whose L3/L4 part matches: what an extractor must look for.
func (p *Policy) needAfter(c candidates, in *matchIn) L7Need {
	var n L7Need
	for {
		ri, ok := c.next()
		if !ok {
			return n
		}
		r := &p.rules[ri]
		if r.l7 != nil && r.l7.need&^n != 0 && r.firstFail(in) == condNone {
			n |= r.l7.need
		}
	}
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
	case rw == rejectWithHTTP403:
		return RejectHTTP403
	case rw == rejectWithNXDomain:
		return RejectDNSNXDomain
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
