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

// ExplainInput is what Explain knows of a flow beyond its first packet.
type ExplainInput struct {
	// Payload, when not nil, is the first bytes the client sends: armed
	// payload rules are checked against it, and when Fields is nil the
	// L7 fields are extracted from it as the gateway would.
	Payload []byte
	// Fields are the flow's L7 fields (or one DNS query's name); nil
	// with no Payload: every field is absent.
	Fields *L7Fields
}

// Explain traces f through every rule in file order, saying why each
// rule did or did not match and which step decided. payload, when not
// nil, is treated as the first bytes the client sends: armed payload rules
// are checked against it. Unlike Decide it takes no limit tokens, reads
// the rules linearly and allocates freely; it is for people, not packets.
func (p *Policy) Explain(f *Flow, payload []byte) []RuleTrace {
	return p.ExplainWith(f, ExplainInput{Payload: payload})
}

// ExplainWith is Explain with L7 fields: rules with tls/http/dns keys are
// decided on in.Fields (or on what in.Payload yields) as Resume and
// DecideDNS would.
func (p *Policy) ExplainWith(f *Flow, x ExplainInput) []RuleTrace {
	payload := x.Payload
	fields, fieldsFrom := p.explainFields(x)
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
		if r.l7 != nil {
			ok, why := p.explainL7(r, fields, fieldsFrom)
			if !ok {
				t.Why = why
				out = append(out, t)
				continue
			}
			t.Why = why + "; "
		}
		t.Matched = true
		switch {
		case r.payload != nil:
			t.Why += "L3/L4 conditions hold: payload patterns armed"
			t.Action = p.ruleAction(r, f.Proto)
			armed = append(armed, len(out))
		case r.audit:
			t.Why += "matched in audit mode: logged, evaluation continues"
			t.Action = "would-" + p.ruleAction(r, f.Proto)
		case r.isLog:
			t.Why += "matched: logged, evaluation continues"
			t.Action = "log"
		default:
			t.Why += "all conditions hold"
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
		case p.payloadMatch(r, f, payload):
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

// payloadMatch runs rule r's payload list over b as the client's first
// bytes, through the same Inspector the relay uses.
func (p *Policy) payloadMatch(r *rule, f *Flow, b []byte) bool {
	in := &Inspector{p: p, best: -1, ents: make([]entryState, len(r.payload.entries)),
		rules: []armedRule{{pr: r.payload}}}
	for i := range in.ents {
		in.ents[i].last, in.ents[i].prev = -1, -1
		if e := &r.payload.entries[i]; e.re != nil && e.lit == nil {
			in.noPre = true
		}
	}
	in.scan = in.onMatch
	_, ok := in.Feed(ToServer, b)
	return ok
}

// explainFields resolves the L7 fields Explain decides on, and says where
// they came from.
func (p *Policy) explainFields(x ExplainInput) (*L7Fields, string) {
	if x.Fields != nil {
		x.Fields.normalize()
		return x.Fields, "given"
	}
	if x.Payload == nil {
		return &L7Fields{}, "no L7 field given"
	}
	e := &L7Extractor{max: int(p.inspect.MaxBytes), tryTLS: true, tryHTTP: true}
	e.Feed(x.Payload)
	if f := e.Fields(); f.Incomplete {
		return f, "--payload ends before a complete ClientHello or request head"
	}
	return e.Fields(), "from --payload"
}

// explainL7 decides rule r's L7 conditions on fields and says why.
func (p *Policy) explainL7(r *rule, fields *L7Fields, from string) (bool, string) {
	if fields.Incomplete && p.incompleteDrop && !r.l7.dns() {
		return true, "fields incomplete within [inspect] max_bytes (on_incomplete = \"drop\": the flow is dropped here)"
	}
	ok, k := r.l7.match(fields)
	val, present := fields.value(k)
	desc := k.String() + " absent (" + from + ")"
	if present {
		desc = fmt.Sprintf("%s %q", k, val)
	}
	if !ok {
		return false, "L3/L4 conditions hold, L7 does not: " + desc + " does not match"
	}
	return true, "L7 matches: " + desc
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
