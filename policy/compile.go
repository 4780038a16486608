package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

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
}

// rejectWith is a configured reject_with; it is resolved against the flow's
// protocol by Decide.
type rejectWith uint8

const (
	rejectAuto rejectWith = iota
	rejectWithTCPReset
	rejectWithICMP
)

func parseRejectWith(s string) (rejectWith, bool) {
	switch s {
	case "", "auto":
		return rejectAuto, true
	case "tcp-reset":
		return rejectWithTCPReset, true
	case "icmp-port-unreachable":
		return rejectWithICMP, true
	}
	return 0, false
}

type decisions uint8

const (
	decisionsDrops decisions = iota
	decisionsNone
	decisionsAll
)

// namedSet is a compiled [sets.NAME]; exactly one of the value fields is
// used, according to typ. A set whose type was invalid has typ "" and is
// kept so references to it do not produce a second error.
type namedSet struct {
	typ     string
	prefix  *prefixSet
	ports   *portSet
	domains []string // lower case, without trailing dot; matched by L7 work
}

// Compile validates cfg and compiles it. Every problem found is reported:
// the error is a cfgerr.List whose keys are TOML key paths such as
// {"rule", "3", "dst_port", "1"} or {"sets", "lan", "elements", "0"}.
func Compile(cfg Config) (*Policy, error) {
	var errs cfgerr.List
	p := &Policy{}
	p.compileDefaults(&cfg.Defaults, &errs)
	p.compileSets(cfg.Sets, &errs)
	p.compileRules(cfg.Rules, &errs)
	p.inspect = compileInspect(cfg.Inspect, &errs)
	p.log, p.decisions = compileLog(cfg.Log, &errs)
	if len(errs) > 0 {
		return nil, errs
	}
	p.counters = make([]*ruleCounter, len(p.rules)+1)
	for i := range p.counters {
		p.counters[i] = new(ruleCounter)
	}
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
	if !ok {
		errs.Addf(fmt.Sprintf("unknown reject_with %q (want auto, tcp-reset or icmp-port-unreachable)", d.RejectWith), "defaults", "reject_with")
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

func (p *Policy) compileSets(sets map[string]SetConfig, errs *cfgerr.List) {
	p.sets = make(map[string]*namedSet, len(sets))
	names := make([]string, 0, len(sets))
	for n := range sets {
		names = append(names, n)
	}
	slices.Sort(names) // errors in a stable order
	for _, name := range names {
		sc := sets[name]
		if !validSetName(name) {
			errs.Addf(fmt.Sprintf("invalid set name %q (use letters, digits, '_' and '-')", name), "sets", name)
		}
		ns := &namedSet{}
		p.sets[name] = ns
		switch sc.Type {
		case "cidr":
			ns.typ = sc.Type
			var pfx []netip.Prefix
			for j, e := range sc.Elements {
				pf, err := parsePrefixElem(e)
				if err != nil {
					errs.Addf(err.Error(), "sets", name, "elements", j)
					continue
				}
				pfx = append(pfx, pf)
			}
			ns.prefix = newPrefixSet(pfx)
		case "port":
			ns.typ = sc.Type
			var pr []portRange
			for j, e := range sc.Elements {
				r, err := parsePortElem(e)
				if err != nil {
					errs.Addf(err.Error(), "sets", name, "elements", j)
					continue
				}
				pr = append(pr, r)
			}
			ns.ports = newPortSet(pr)
		case "domain":
			ns.typ = sc.Type
			for j, e := range sc.Elements {
				d, err := parseDomainElem(e)
				if err != nil {
					errs.Addf(err.Error(), "sets", name, "elements", j)
					continue
				}
				ns.domains = append(ns.domains, d)
			}
		case "":
			errs.Addf("type is required (cidr, port or domain)", "sets", name, "type")
		default:
			errs.Addf(fmt.Sprintf("unknown set type %q (want cidr, port or domain)", sc.Type), "sets", name, "type")
		}
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
