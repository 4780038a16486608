package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/tungate/tungate/internal/cfgerr"
)

// Policy is a compiled, immutable rule set. It is safe for concurrent use;
// a reload compiles a new Policy and swaps it in (see CarryCountersFrom).
type Policy struct {
	rules []rule
	// byProto indexes, per protocol class, the rules that can match that
	// protocol, so Decide never looks at a UDP-only rule for a TCP flow nor,
	// mostly, at a rule for another destination port.
	byProto [numProtoClasses]classIndex
	sets    map[string]*namedSet

	defAction Action
	defReject rejectWith
	invalid   Action
	mode      Mode
	inspect   InspectConfig
	log       LogConfig
	decisions decisions

	// counters[i] counts rule i; the last entry counts defaults.policy.
	counters []*ruleCounter
	// byID[id] is 1 + the index of the rule whose stable ID is id (0: no
	// such rule here), so established packets, which carry only the ID,
	// find their counter in one load (CountPacketByID).
	byID []int32

	// now is the clock of dynamic sets and limits, unix ns; tests replace
	// it (SetClock).
	now func() int64

	// cfgRules is the configuration the rules came from, for Explain and
	// Check to quote. Compile does not modify it.
	cfgRules []RuleConfig

	rejectMaxRate float64 // rejects per second, 0 = unlimited
	logRate       float64 // decision-log lines per second
	logBurst      int
	recheck       bool // [reload] existing_flows = "recheck"
	invalidRules  bool // some rule lists ct_state "invalid"

	incompleteDrop bool         // [inspect] on_incomplete = "drop"
	pay            payloadIndex // every payload literal, one automaton per direction
}

// rejectWith is a configured reject_with; it is resolved against the flow's
// protocol by Decide.
type rejectWith uint8

const (
	rejectAuto rejectWith = iota
	rejectWithTCPReset
	rejectWithICMP
	rejectWithAdmin
	rejectWithHTTP403
	rejectWithNXDomain
)

func parseRejectWith(s string) (rejectWith, bool) {
	switch s {
	case "", "auto":
		return rejectAuto, true
	case "tcp-reset":
		return rejectWithTCPReset, true
	case "icmp-port-unreachable":
		return rejectWithICMP, true
	case "icmp-admin-prohibited":
		return rejectWithAdmin, true
	case "http-403":
		return rejectWithHTTP403, true
	case "dns-nxdomain":
		return rejectWithNXDomain, true
	}
	return 0, false
}

type decisions uint8

const (
	decisionsDrops decisions = iota
	decisionsNone
	decisionsAll
)

// Compile validates cfg and compiles it. Every problem found is reported:
// the error is a cfgerr.List whose keys are TOML key paths such as
// {"rule", "3", "dst_port", "1"} or {"sets", "lan", "elements", "0"}.
func Compile(cfg Config) (*Policy, error) {
	var errs cfgerr.List
	p := &Policy{now: wallClock, cfgRules: slices.Clone(cfg.Rules)}
	p.compileDefaults(&cfg.Defaults, &errs)
	p.compileSets(cfg.Sets, cfg.Dir, &errs)
	p.compileRules(cfg.Rules, &errs)
	p.inspect = compileInspect(cfg.Inspect, &errs)
	p.incompleteDrop = p.inspect.OnIncomplete == "drop"
	p.log, p.decisions = compileLog(cfg.Log, &errs)
	p.logRate, p.logBurst = logBudget(p.log)
	p.rejectMaxRate = compileReject(cfg.Reject, &errs)
	p.recheck = compileReload(cfg.Reload, &errs)
	if len(errs) == 0 {
		if err := p.buildPayloadIndex(); err != nil {
			errs.Addf(err.Error(), "rule")
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	p.counters = make([]*ruleCounter, len(p.rules)+1)
	for i := range p.counters {
		p.counters[i] = new(ruleCounter)
	}
	p.indexIDs()
	return p, nil
}

func (p *Policy) compileDefaults(d *Defaults, errs *cfgerr.List) {
	switch a, ok := parseAction(d.Policy); {
	case d.Policy == "":
		errs.Addf(`policy is required (allow, drop or reject)`, "defaults", "policy")
	case !ok:
		errs.Addf(fmt.Sprintf("unknown policy %q (want allow, drop or reject)", d.Policy), "defaults", "policy")
	default:
		p.defAction = a
	}
	p.invalid = ActionDrop
	if d.Invalid != "" {
		a, ok := parseAction(d.Invalid)
		if !ok {
			errs.Addf(fmt.Sprintf("unknown action %q (want allow, drop or reject)", d.Invalid), "defaults", "invalid")
		}
		p.invalid = a
	}
	rw, ok := parseRejectWith(d.RejectWith)
	if !ok || rw == rejectWithHTTP403 || rw == rejectWithNXDomain {
		errs.Addf(fmt.Sprintf("unknown reject_with %q (want auto, tcp-reset, icmp-port-unreachable or icmp-admin-prohibited; http-403 and dns-nxdomain belong on http.* and dns.qname rules)", d.RejectWith), "defaults", "reject_with")
		rw = rejectAuto
	}
	p.defReject = rw
	switch d.Mode {
	case "", "enforce":
		p.mode = ModeEnforce
	case "audit":
		p.mode = ModeAudit
	default:
		errs.Addf(fmt.Sprintf("unknown mode %q (want enforce or audit)", d.Mode), "defaults", "mode")
	}
}

func validSetName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// parsePrefixElem parses a CIDR or a bare address (v4 or v6) into a prefix.
// IPv4-mapped IPv6 forms are unmapped, since flows are matched unmapped.
func parsePrefixElem(v any) (netip.Prefix, error) {
	s, ok := v.(string)
	if !ok {
		return netip.Prefix{}, fmt.Errorf("invalid address of type %s (want a CIDR, an address or \"@set\")", typeName(v))
	}
	s = strings.TrimSpace(s)
	var pf netip.Prefix
	if strings.Contains(s, "/") {
		x, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("invalid CIDR %q", s)
		}
		pf = x.Masked()
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("invalid address %q (want a CIDR, an address or \"@set\")", s)
		}
		pf = netip.PrefixFrom(a, a.BitLen())
	}
	if pf.Addr().Is4In6() && pf.Bits() >= 96 {
		pf = netip.PrefixFrom(pf.Addr().Unmap(), pf.Bits()-96)
	}
	return pf, nil
}

// parseDomainElem checks a domain set element: DNS labels of letters,
// digits, '-' and '_', optionally starting with "*." and ending with ".".
func parseDomainElem(v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("invalid domain of type %s (want a string)", typeName(v))
	}
	d := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(s), "."))
	body := strings.TrimPrefix(d, "*.")
	if body == "" || len(d) > 253 {
		return "", fmt.Errorf("invalid domain %q", s)
	}
	for _, label := range strings.Split(body, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "", fmt.Errorf("invalid domain %q", s)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", fmt.Errorf("invalid domain %q", s)
			}
		}
	}
	return d, nil
}

func wallClock() int64 { return time.Now().UnixNano() }

// SetClock replaces the clock of dynamic sets and limits; for tests. Call
// it before the policy is used.
func (p *Policy) SetClock(now func() time.Time) {
	p.now = func() int64 { return now().UnixNano() }
}
