package policy

import (
	"fmt"
	"strings"
)

// RuleTrace is one step of Explain: a rule (or the default policy, Rule
// -1) and what it did with the flow.
type RuleTrace struct {
	Rule    int    // index in file order, -1 for defaults.policy / defaults.invalid
	Name    string // "default" for the default
	Matched bool   // every condition held
	// Why is the first condition that failed ("dst_port 22 not in [80,
	// 443]"), or for a matched rule what the match did.
	Why     string
	Decides bool   // this step gave the final verdict
	Action  string // allow, drop, reject/KIND, log, or would-ACTION for audit hits
}

// Explain traces f through every rule in file order, saying why each
// rule did or did not match and which step decided. payload, when not
// nil, is treated as the first bytes the client sends: armed payload rules
// are checked against it. Unlike Decide it takes no limit tokens, reads
// the rules linearly and allocates freely; it is for people, not packets.
func (p *Policy) Explain(f *Flow, payload []byte) []RuleTrace {
	var in matchIn
	p.prepare(f, &in)
	out := make([]RuleTrace, 0, len(p.rules)+1)
	decided := -1 // index in out of the L3/L4 decision
	var armed []int
	for i := range p.rules {
		r := &p.rules[i]
		t := RuleTrace{Rule: i, Name: r.name}
		if decided >= 0 {
			t.Why = fmt.Sprintf("not evaluated: %q decided first", out[decided].Name)
			out = append(out, t)
			continue
		}
		if r.protos&(1<<protoClass(f.Proto)) == 0 {
			t.Why = fmt.Sprintf("proto %s not in %s", protoName(f.Proto), fmtList(p.cfgRules[i].Proto))
			out = append(out, t)
			continue
		}
		if c := r.firstFail(&in); c != condNone {
			t.Why = p.whyNot(i, c, f, &in)
			out = append(out, t)
			continue
		}
		if r.limit != nil && !r.limit.peek(r.limitKey(&in), in.clk.get()) {
			t.Why = p.whyNot(i, condLimit, f, &in)
			out = append(out, t)
			continue
		}
		t.Matched = true
		switch {
		case r.payload != nil:
			t.Why = "L3/L4 conditions hold: payload patterns armed"
			t.Action = p.ruleAction(r, f.Proto)
			armed = append(armed, len(out))
		case r.audit:
			t.Why = "matched in audit mode: logged, evaluation continues"
			t.Action = "would-" + p.ruleAction(r, f.Proto)
		case r.isLog:
			t.Why = "matched: logged, evaluation continues"
			t.Action = "log"
		default:
			t.Why = "all conditions hold"
			t.Action = p.ruleAction(r, f.Proto)
			t.Decides = true
			decided = len(out)
		}
		if r.addTo != nil && !r.audit {
			k := "src"
			if !r.addTo.src {
				k = "dst"
			}
			t.Why += fmt.Sprintf("; adds %s to set %q", k, r.addTo.name)
		}
		out = append(out, t)
	}
	if decided < 0 {
		t := RuleTrace{Rule: -1, Name: "default", Matched: true, Decides: true}
		a, what := p.defAction, "defaults.policy"
		if f.CtState == CtInvalid {
			a, what = p.invalid, "defaults.invalid"
		}
		t.Action = a.String()
		if a == ActionReject {
			t.Action += "/" + resolveReject(p.defReject, f.Proto).String()
		}
		t.Why = "no rule decided: " + what
		if p.mode == ModeAudit && a != ActionAllow {
			t.Why += ` (audit mode: would-` + a.String() + `, the flow passes)`
			t.Action = "allow"
		}
		decided = len(out)
		out = append(out, t)
	}
	if !strings.HasPrefix(out[decided].Action, "allow") {
		return out
	}
	for _, k := range armed {
		t := &out[k]
		r := &p.rules[t.Rule]
		switch {
		case payload == nil:
			t.Why += " (no --payload given)"
		case r.payloadMatch(payload):
			if r.audit {
				t.Why += "; payload matches: logged, flow continues"
				t.Action = "would-" + t.Action
				continue
			}
			t.Why += "; payload matches: decides once the bytes are seen"
			t.Decides = true
			out[decided].Decides = false
			out[decided].Why += fmt.Sprintf(" (opened the flow; payload rule %q then decided)", t.Name)
			return out
		default:
			t.Why += "; no pattern found in the payload"
		}
	}
	return out
}

func (r *rule) payloadMatch(b []byte) bool {
	for i := range r.payload {
		pt := &r.payload[i]
		if pt.dirs&(1<<ToServer) == 0 {
			continue
		}
		if _, ok := pt.scan(0, b); ok {
			return true
		}
	}
	return false
}

func (p *Policy) ruleAction(r *rule, proto uint8) string {
	if r.isLog {
		return "log"
	}
	s := r.action.String()
	if r.action == ActionReject {
		s += "/" + resolveReject(r.reject, proto).String()
	}
	return s
}

// whyNot renders the failed condition c of rule i with the flow's value and
// the rule's configured list.
func (p *Policy) whyNot(i int, c cond, f *Flow, in *matchIn) string {
	rc := &p.cfgRules[i]
	r := &p.rules[i]
	switch c {
	case condCtState:
		l := rc.CtState
		if len(l) == 0 {
			l = List{"new", "established", "related"}
		}
		return fmt.Sprintf("ct_state %s not in %s", f.CtState, fmtList(l))
	case condICMPType:
		return fmt.Sprintf("icmp_type %s not in %s", icmpTypeName(in.icmpV6, in.icmpType), fmtList(rc.ICMPType))
	case condDstPort:
		return fmt.Sprintf("dst_port %d not in %s", in.dport, fmtList(rc.DstPort))
	case condNotDstPort:
		return fmt.Sprintf("dst_port %d in not_dst_port %s", in.dport, fmtList(rc.NotDstPort))
	case condSrcPort:
		return fmt.Sprintf("src_port %d not in %s", in.sport, fmtList(rc.SrcPort))
	case condNotSrcPort:
		return fmt.Sprintf("src_port %d in not_src_port %s", in.sport, fmtList(rc.NotSrcPort))
	case condDst:
		return fmt.Sprintf("dst %s not in %s", in.dst, fmtList(rc.Dst))
	case condSrc:
		return fmt.Sprintf("src %s not in %s", in.src, fmtList(rc.Src))
	case condNotDst:
		return fmt.Sprintf("dst %s in not_dst %s", in.dst, fmtList(rc.NotDst))
	case condNotSrc:
		return fmt.Sprintf("src %s in not_src %s", in.src, fmtList(rc.NotSrc))
	case condMaxConns:
		return fmt.Sprintf("source has %d tracked flows, max_conns matches above %d", in.srcConns, r.maxConns)
	case condLimit:
		if r.limit.over {
			return fmt.Sprintf("limit %s: within the rate (match = over)", rc.Limit.Rate)
		}
		return fmt.Sprintf("limit %s: over the rate (match = under)", rc.Limit.Rate)
	}
	return "does not match"
}

func protoName(proto uint8) string {
	switch proto {
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 1:
		return "icmp"
	case 58:
		return "icmpv6"
	}
	return fmt.Sprint(proto)
}

// fmtList writes a configured list the way it reads in the file:
// [80, 443, "@web"] becomes [80, 443, @web].
func fmtList(l List) string {
	parts := make([]string, len(l))
	for i, e := range l {
		parts[i] = fmt.Sprint(e)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}
