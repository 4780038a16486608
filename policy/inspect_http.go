package policy

import "github.com/tungate/tungate/policy/l7"

// httpCheck decides every request of a kept-alive or pipelined HTTP/1.x
// connection against the rules from the one the flow was pending at, as
// Resume decided the first. A connection whose framing breaks (an
// l7.HTTPError, such as conflicting lengths) is decided once more with
// its fields absent, so a rule that needs them cannot be bypassed by
// making the stream unreadable; then checking stops.
type httpCheck struct {
	f      Flow
	from   int32
	st     l7.HTTPState
	fields L7Fields
	stop   bool // the stream stopped being HTTP: nothing more to check
}

func (h *httpCheck) over() bool { return h.stop }

// feed parses data and returns the first refused request in it, else the
// first audit-mode hit (which does not stop the connection).
func (h *httpCheck) feed(p *Policy, data []byte) (Hit, bool) {
	var audit Hit
	audited := false
	for !h.stop && len(data) > 0 {
		n, ev := h.st.Feed(data)
		data = data[n:]
		switch ev.Kind {
		case l7.HTTPRequest:
			h.fields = L7Fields{Proto: L7HTTP, Host: ev.Host, Method: ev.Method, Path: ev.Path}
		case l7.HTTPError:
			h.stop = true
			h.fields = L7Fields{}
		case l7.NotHTTP:
			h.stop = true
			continue
		default:
			if h.st.Opaque() {
				h.stop = true
			}
			continue
		}
		v := p.recheckHTTP(&h.f, h.from, &h.fields)
		if v.Action != ActionAllow {
			hit := Hit{Rule: v.Rule, RuleID: v.RuleID, Action: v.Action, Reject: v.Reject, Field: v.Field}
			if val, ok := h.fields.value(v.Field); ok {
				hit.Value = string(val)
			}
			return hit, true
		}
		if !audited && v.NAudit > 0 && v.Audit[0].Rule >= 0 {
			a := v.Audit[0]
			r := &p.rules[a.Rule]
			audit = Hit{Rule: int(a.Rule), RuleID: a.RuleID, Action: a.Action, Audit: true}
			if a.Action == ActionReject {
				audit.Reject = resolveReject(r.reject, h.f.Proto)
			}
			if r.l7 != nil {
				audit.Field = r.l7.fields[0]
				if val, ok := h.fields.value(audit.Field); ok {
					audit.Value = string(val)
				}
			}
			audited = true
		}
	}
	return audit, audited
}
