package verdict

import "github.com/tungate/tungate/policy"

// L7Info is what inspection learned about one flow, for `tungate
// conntrack`: the fields an L7 decision read and the rule that decided on
// them. Empty strings are fields that were never seen.
type L7Info struct {
	SNI      string // tls.sni of a flow that was pending on it
	HTTPHost string // http.host of the first request (or of a refused later one)
	DNSQName string // the latest refused query of a DNS flow, else its first
	Rule     string // the rule that decided once the field was read (or refused a query or request); "" before
	Action   string // that rule's action
}

// record merges what a decision read: a non-empty field replaces the old
// one, and a deciding rule replaces the earlier one.
func (fl *Flow) record(field policy.L7Field, value, rule, action string) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	switch field {
	case policy.FieldSNI:
		fl.l7.SNI = value
	case policy.FieldHTTPHost:
		fl.l7.HTTPHost = value
	case policy.FieldDNSQName:
		fl.l7.DNSQName = value
	}
	if rule != "" || action != "" {
		fl.l7.Rule, fl.l7.Action = rule, action
	}
}

// recordFirst sets field only when none was recorded yet.
func (fl *Flow) recordFirst(field policy.L7Field, value string) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	switch {
	case field == policy.FieldSNI && fl.l7.SNI == "":
		fl.l7.SNI = value
	case field == policy.FieldHTTPHost && fl.l7.HTTPHost == "":
		fl.l7.HTTPHost = value
	case field == policy.FieldDNSQName && fl.l7.DNSQName == "":
		fl.l7.DNSQName = value
	}
}
