package policy

// Decide returns the verdict for a new flow: the first rule, in file order,
// whose conditions all hold. Payload rules whose L3/L4 part matches are
// armed (Verdict.Armed) and evaluation continues past them; action="log"
// rules record LogRule and continue. Decide allocates nothing.
func (p *Policy) Decide(f *Flow) Verdict {
	v := Verdict{Rule: -1, LogRule: -1}
	src, dst := f.Src.Unmap(), f.Dst.Unmap()
	sport, dport := f.SrcPort, f.DstPort
	armed := false
	c := p.candidates(f.Proto, dport)
	for {
		ri, ok := c.next()
		if !ok {
			break
		}
		r := &p.rules[ri]
		if !r.matchL34(src, dst, sport, dport) {
			continue
		}
		if r.payload != nil {
			armed = true
			continue
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
	p.finish(&v, f.Proto, p.defReject, armed)
	return v
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
	case proto == 6:
		return RejectTCPReset
	}
	return RejectICMPPortUnreachable
}
