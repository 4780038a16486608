package policy

import "github.com/tungate/tungate/policy/l7"

// Resume finishes the decision of a flow that Decide left Pending for a
// tls/http field: evaluation continues at the pending rule, with fields
// known, in file order as Decide would have. Audit hits, the log rule and
// add_to actions recorded before the pending rule are kept. fields may be
// nil (nothing arrived); an absent field matches only `absent = true`.
// When fields.Incomplete and [inspect] on_incomplete = "drop", the flow
// is dropped by the pending rule (Verdict.Incomplete).
//
// The verdict's Field and Value say which field decided. When the fields
// came from an HTTP request and http rules are armed, Armed is set so
// that NewInspector checks every later request of the connection.
//
// Call it on the same Policy that returned v. Names in *fields are
// normalized in place. It allocates only Value (once per flow).
func (p *Policy) Resume(f *Flow, v Verdict, fields *L7Fields) Verdict {
	if !v.Pending || v.at <= 0 || int(v.at) > len(p.rules) {
		return v
	}
	from := v.at - 1
	if fields == nil {
		fields = &L7Fields{}
	}
	fields.normalize()
	v.Pending, v.Armed, v.Log, v.Reject = false, false, false, RejectNone
	if fields.Incomplete && p.incompleteDrop && v.Need&NeedDNS == 0 {
		v.Action, v.Rule, v.RuleID = ActionDrop, int(from), p.rules[from].id
		v.Incomplete = true
		p.finish(&v, f.Proto, rejectAuto, false)
		return v
	}
	p.walk(f, &v, from, fields, evalResume)
	if val, ok := fields.value(v.Field); ok {
		v.Value = string(val)
	}
	if fields.Proto == L7HTTP && v.Need&NeedHTTP != 0 && v.Action == ActionAllow {
		v.httpEach, v.Armed = true, true
	}
	return v
}

// DecideDNS decides one DNS query of a flow whose verdict v (from Decide)
// is Pending with Need&NeedDNS: evaluation continues at the pending rule
// with the query's name as dns.qname (q nil: the datagram or message is
// not a query, and the name is absent). Allow: forward the query; drop:
// send nothing; reject with RejectDNSNXDomain: answer l7.NXDomain; any
// other reject comes from an L3/L4 rule after the dns rules and is
// answered as for a flow. Limits of rules after the pending one are
// peeked, not charged, and add_to is not recorded: the flow was already
// admitted. Value is set (the one allocation) only when the verdict is
// logged, audited or not an allow; the name is q.Name() otherwise.
func (p *Policy) DecideDNS(f *Flow, v Verdict, q *l7.Query) Verdict {
	if !v.Pending || v.at <= 0 || int(v.at) > len(p.rules) {
		return v
	}
	var fields L7Fields
	if q != nil {
		fields.Proto, fields.QName = L7DNS, l7.NormalizeName(q.Name())
	}
	d := Verdict{Rule: -1, LogRule: -1}
	p.walk(f, &d, v.at-1, &fields, evalRecheck)
	if d.Field != FieldNone && (d.Log || d.Action != ActionAllow || d.NAudit > 0) {
		d.Value = string(fields.QName)
	}
	return d
}

// recheckHTTP decides one later request of a kept-alive HTTP connection
// (see Inspector): like DecideDNS, limits are peeked and add_to ignored.
// It allocates nothing.
func (p *Policy) recheckHTTP(f *Flow, from int32, fields *L7Fields) Verdict {
	d := Verdict{Rule: -1, LogRule: -1}
	p.walk(f, &d, from, fields, evalRecheck)
	return d
}
