package policy

import "strconv"

// Mode is defaults.mode.
type Mode uint8

const (
	ModeEnforce Mode = iota // verdicts are applied
	ModeAudit               // would-be drops and rejects are logged, traffic passes
)

func (m Mode) String() string {
	if m == ModeAudit {
		return "audit"
	}
	return "enforce"
}

func (a Action) String() string {
	switch a {
	case ActionAllow:
		return "allow"
	case ActionDrop:
		return "drop"
	case ActionReject:
		return "reject"
	}
	return "action(" + strconv.Itoa(int(a)) + ")"
}

func (k RejectKind) String() string {
	switch k {
	case RejectNone:
		return "none"
	case RejectTCPReset:
		return "tcp-reset"
	case RejectICMPPortUnreachable:
		return "icmp-port-unreachable"
	case RejectICMPAdminProhibited:
		return "icmp-admin-prohibited"
	case RejectHTTP403:
		return "http-403"
	case RejectDNSNXDomain:
		return "dns-nxdomain"
	}
	return "reject-kind(" + strconv.Itoa(int(k)) + ")"
}

// String renders the verdict for logs and test failures, e.g.
// "reject/tcp-reset rule=3 log" or "drop rule=default".
func (v Verdict) String() string {
	b := make([]byte, 0, 48)
	b = append(b, v.Action.String()...)
	if v.Action == ActionReject {
		b = append(b, '/')
		b = append(b, v.Reject.String()...)
	}
	b = append(b, " rule="...)
	if v.Rule < 0 {
		b = append(b, "default"...)
	} else {
		b = strconv.AppendInt(b, int64(v.Rule), 10)
	}
	if v.LogRule >= 0 {
		b = append(b, " logrule="...)
		b = strconv.AppendInt(b, int64(v.LogRule), 10)
	}
	if v.Log {
		b = append(b, " log"...)
	}
	if v.Armed {
		b = append(b, " armed"...)
	}
	if v.Pending {
		b = append(b, " pending"...)
	}
	if v.Field != FieldNone {
		b = append(b, ' ')
		b = append(b, v.Field.String()...)
		b = append(b, '=')
		b = strconv.AppendQuote(b, v.Value)
	}
	return string(b)
}

// String returns the field's key as written in the configuration.
func (f L7Field) String() string {
	switch f {
	case FieldNone:
		return "none"
	case FieldSNI:
		return "tls.sni"
	case FieldHTTPHost:
		return "http.host"
	case FieldHTTPMethod:
		return "http.method"
	case FieldHTTPPath:
		return "http.path"
	case FieldDNSQName:
		return "dns.qname"
	case FieldPayload:
		return "payload"
	}
	return "field(" + strconv.Itoa(int(f)) + ")"
}

// LogKey is the decision-log attribute for the field's value (see
// docs/operations.md): sni, http_host, http_method, http_path, dns_qname
// or pattern.
func (f L7Field) LogKey() string {
	switch f {
	case FieldSNI:
		return "sni"
	case FieldHTTPHost:
		return "http_host"
	case FieldHTTPMethod:
		return "http_method"
	case FieldHTTPPath:
		return "http_path"
	case FieldDNSQName:
		return "dns_qname"
	case FieldPayload:
		return "pattern"
	}
	return ""
}

// parseAction maps the configuration words to actions; log is not an
// Action (it never decides) and is handled by the rule compiler.
func parseAction(s string) (Action, bool) {
	switch s {
	case "allow":
		return ActionAllow, true
	case "drop":
		return ActionDrop, true
	case "reject":
		return ActionReject, true
	}
	return 0, false
}
