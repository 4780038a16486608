package policy

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/tungate/tungate/internal/cfgerr"
)

func (p *Policy) compileRules(rcs []RuleConfig, errs *cfgerr.List) {
	p.rules = make([]rule, len(rcs))
	firstUse := make(map[string]int, len(rcs))
	for i := range rcs {
		rc := &rcs[i]
		r := &p.rules[i]
		key := []string{"rule", fmt.Sprint(i)}
		p.compileRule(rc, r, key, errs)
		if r.name != "" {
			if j, dup := firstUse[r.name]; dup {
				errs.Addf(fmt.Sprintf("duplicate rule name %q (also rule %d)", r.name, j), key, "name")
			} else {
				firstUse[r.name] = i
			}
		}
		if r.ct&(1<<CtInvalid) != 0 {
			p.invalidRules = true
		}
	}
	for c := range numProtoClasses {
		var members []int32
		for i := range p.rules {
			if p.rules[i].protos&(1<<c) != 0 {
				members = append(members, int32(i))
			}
		}
		p.byProto[c] = buildClassIndex(p.rules, members)
	}
}

func (p *Policy) compileRule(rc *RuleConfig, r *rule, key []string, errs *cfgerr.List) {
	switch name := rc.Name; {
	case name == "":
		errs.Addf("name is required", key, "name")
	case name == "default":
		errs.Addf(`name "default" is reserved for defaults.policy`, key, "name")
	case len(name) > 128 || strings.ContainsFunc(name, func(c rune) bool { return c < 0x20 || c == 0x7f }):
		errs.Addf(fmt.Sprintf("invalid rule name %q (at most 128 printable characters)", name), key, "name")
	default:
		r.name = name
		r.id = internName(name)
	}

	switch a, ok := parseAction(rc.Action); {
	case rc.Action == "":
		errs.Addf("action is required (allow, drop, reject or log)", key, "action")
	case rc.Action == "log":
		r.isLog = true
	case !ok:
		errs.Addf(fmt.Sprintf("unknown action %q (want allow, drop, reject or log)", rc.Action), key, "action")
	default:
		r.action = a
	}
	r.log = rc.Log
	switch rc.Mode {
	case "", "enforce":
		r.audit = p.mode == ModeAudit && !r.isLog && r.action != ActionAllow
	case "audit":
		r.audit = !r.isLog
	default:
		errs.Addf(fmt.Sprintf("unknown mode %q (want enforce or audit)", rc.Mode), key, "mode")
	}

	protoOK := p.compileProto(rc.Proto, r, key, errs)
	r.ct = compileCtState(rc.CtState, key, errs)
	r.icmp = compileICMPTypes(rc.ICMPType, r.protos, protoOK, key, errs)

	r.src = p.compileAddrs(rc.Src, key, "src", errs)
	r.dst = p.compileAddrs(rc.Dst, key, "dst", errs)
	r.notSrc = p.compileAddrs(rc.NotSrc, key, "not_src", errs)
	r.notDst = p.compileAddrs(rc.NotDst, key, "not_dst", errs)

	ports := []struct {
		name string
		l    List
		dst  *portCond
	}{
		{"src_port", rc.SrcPort, &r.srcPort},
		{"dst_port", rc.DstPort, &r.dstPort},
		{"not_dst_port", rc.NotDstPort, &r.notDstPort},
		{"not_src_port", rc.NotSrcPort, &r.notSrcPort},
	}
	for _, pk := range ports {
		if len(pk.l) == 0 {
			continue
		}
		if protoOK && (r.protos == protoAll || r.protos&^protoBitsPorts != 0) {
			errs.Addf(pk.name+` needs proto limited to "tcp" and/or "udp"`, key, pk.name)
		}
		*pk.dst = p.compilePorts(pk.l, key, pk.name, errs)
	}
	r.dstMin, r.dstMax = r.dstPort.bounds()

	r.l7 = p.compileL7(rc, r, protoOK, key, errs)
	rw, ok := parseRejectWith(rc.RejectWith)
	isDNS := r.l7 != nil && r.l7.dns()
	switch {
	case !ok:
		errs.Addf(fmt.Sprintf("unknown reject_with %q (want auto, tcp-reset, icmp-port-unreachable, icmp-admin-prohibited, http-403 or dns-nxdomain)", rc.RejectWith), key, "reject_with")
	case isDNS && (rw == rejectAuto || rw == rejectWithNXDomain):
		// A refused query is answered, whatever [defaults] says.
		r.reject = rejectWithNXDomain
		if rc.RejectWith != "" && rc.Action != "reject" {
			errs.Addf(`reject_with needs action = "reject"`, key, "reject_with")
		}
	case isDNS:
		errs.Addf(`dns.qname rules reject with "dns-nxdomain" (or "auto", the same)`, key, "reject_with")
	case rc.RejectWith == "":
		r.reject = p.defReject
	case rc.Action != "reject":
		errs.Addf(`reject_with needs action = "reject"`, key, "reject_with")
	case rw == rejectWithTCPReset && protoOK && r.protos != protoBitTCP:
		errs.Addf(`reject_with = "tcp-reset" needs proto = "tcp"`, key, "reject_with")
	case rw == rejectWithHTTP403 && (r.l7 == nil || r.l7.need&NeedHTTP == 0):
		errs.Addf(`reject_with = "http-403" needs an http.* key`, key, "reject_with")
	case rw == rejectWithNXDomain:
		errs.Addf(`reject_with = "dns-nxdomain" needs a dns.qname key`, key, "reject_with")
	default:
		r.reject = rw
	}

	r.payload = compilePayload(rc.Payload, key, errs)
	if len(rc.Payload) > 0 && r.isLog {
		errs.Addf(`payload rules need action allow, drop or reject`, key, "action")
	}

	r.maxConns = -1
	if mc := rc.MaxConns; mc != nil {
		switch mc.Per {
		case "", "src":
		default:
			errs.Addf(fmt.Sprintf("unknown per %q (want src)", mc.Per), key, "max_conns", "per")
		}
		if mc.Count < 0 {
			errs.Addf("count must not be negative", key, "max_conns", "count")
		}
		r.maxConns = max(mc.Count, 0)
	}
	r.limit = compileLimit(rc.Limit, key, errs)
	r.addTo = p.compileAddTo(rc.AddTo, key, errs)
	if len(rc.Payload) > 0 {
		for _, k := range []struct {
			name string
			set  bool
		}{{"limit", rc.Limit != nil}, {"max_conns", rc.MaxConns != nil}, {"add_to", rc.AddTo != nil}} {
			if k.set {
				errs.Addf(k.name+" cannot be combined with payload (payload rules decide after the flow is open)", key, k.name)
			}
		}
	}
	if rc.AddTo != nil && r.audit {
		errs.Addf(`add_to cannot be used in audit mode (it would change what later flows see)`, key, "add_to")
	}
}

// compileProto fills r.protos and reports whether proto was valid (so
// dependent checks do not pile a second error on a typo).
func (p *Policy) compileProto(l List, r *rule, key []string, errs *cfgerr.List) bool {
	if len(l) == 0 {
		r.protos = protoAll
		return true
	}
	ok := true
	for j, e := range l {
		s, _ := e.(string)
		switch s {
		case "tcp":
			r.protos |= protoBitTCP
		case "udp":
			r.protos |= protoBitUDP
		case "icmp":
			r.protos |= protoBitICMP
		case "icmpv6":
			r.protos |= protoBitICMPv6
		case "any":
			r.protos = protoAll
		default:
			ok = false
			if _, isStr := e.(string); isStr {
				errs.Addf(fmt.Sprintf("unknown proto %q (want tcp, udp, icmp, icmpv6 or any)", s), key, "proto", j)
			} else {
				errs.Addf(fmt.Sprintf("invalid proto of type %s (want tcp, udp, icmp, icmpv6 or any)", typeName(e)), key, "proto", j)
			}
		}
	}
	return ok
}

func (p *Policy) compileAddrs(l List, key []string, name string, errs *cfgerr.List) addrCond {
	if len(l) == 0 {
		return nil
	}
	var inline []netip.Prefix
	var c addrCond
	for j, e := range l {
		if s, ok := e.(string); ok && strings.HasPrefix(s, "@") {
			if ns := p.setRef(s[1:], "cidr", errs, key, name, j); ns != nil {
				c = append(c, addrSet{pfx: ns.prefix, dyn: ns.dyn})
			}
			continue
		}
		pf, err := parsePrefixElem(e)
		if err != nil {
			errs.Addf(err.Error(), key, name, j)
			continue
		}
		inline = append(inline, pf)
	}
	if len(inline) > 0 {
		c = append(addrCond{{pfx: newPrefixSet(inline)}}, c...)
	}
	if c == nil {
		// Every element was bad (already reported); match nothing.
		c = addrCond{}
	}
	return c
}

func (p *Policy) compilePorts(l List, key []string, name string, errs *cfgerr.List) portCond {
	var inline []portRange
	var c portCond
	for j, e := range l {
		if s, ok := e.(string); ok && strings.HasPrefix(s, "@") {
			if ns := p.setRef(s[1:], "port", errs, key, name, j); ns != nil {
				c = append(c, ns.ports)
			}
			continue
		}
		pr, err := parsePortElem(e)
		if err != nil {
			errs.Addf(err.Error(), key, name, j)
			continue
		}
		inline = append(inline, pr)
	}
	if len(inline) > 0 {
		c = append(portCond{newPortSet(inline)}, c...)
	}
	if c == nil {
		c = portCond{}
	}
	return c
}

// setRef resolves "@name" to a set of the wanted type, reporting a missing
// set or a type mismatch at the referencing element.
func (p *Policy) setRef(name, typ string, errs *cfgerr.List, key []string, field string, j int) *namedSet {
	ns, ok := p.sets[name]
	switch {
	case !ok:
		errs.Addf(fmt.Sprintf("unknown set %q", name), key, field, j)
		return nil
	case ns.typ == "":
		return nil // its type error is already reported
	case ns.typ != typ:
		errs.Addf(fmt.Sprintf("set %q has type %s, want %s", name, ns.typ, typ), key, field, j)
		return nil
	}
	return ns
}

func (p *Policy) compileAddTo(c *AddToConfig, key []string, errs *cfgerr.List) *addToAction {
	if c == nil {
		return nil
	}
	a := &addToAction{name: c.Set, flush: c.FlushFlows, src: true}
	switch c.Key {
	case "", "src":
	case "dst":
		a.src = false
	default:
		errs.Addf(fmt.Sprintf("unknown key %q (want src or dst)", c.Key), key, "add_to", "key")
	}
	ns, ok := p.sets[c.Set]
	switch {
	case c.Set == "":
		errs.Addf("set is required", key, "add_to", "set")
	case !ok:
		errs.Addf(fmt.Sprintf("unknown set %q", c.Set), key, "add_to", "set")
	case ns.typ == "":
	case ns.dyn == nil:
		errs.Addf(fmt.Sprintf("set %q is not dynamic (add_to needs dynamic = true)", c.Set), key, "add_to", "set")
	default:
		a.set = ns.dyn
		return a
	}
	return nil
}

func compileLimit(c *LimitConfig, key []string, errs *cfgerr.List) *limiter {
	if c == nil {
		return nil
	}
	ok := true
	rate, err := ParseRate(c.Rate)
	if c.Rate == "" {
		errs.Addf(`rate is required (e.g. "10/m")`, key, "limit", "rate")
		ok = false
	} else if err != nil {
		errs.Addf(err.Error(), key, "limit", "rate")
		ok = false
	}
	burst := c.Burst
	if burst < 0 {
		errs.Addf("burst must not be negative", key, "limit", "burst")
		ok = false
	} else if burst == 0 {
		burst = DefaultLimitBurst
	}
	var per limitPer
	switch c.Per {
	case "", "src":
		per = perSrc
	case "dst":
		per = perDst
	case "rule":
		per = perRule
	default:
		errs.Addf(fmt.Sprintf("unknown per %q (want src, dst or rule)", c.Per), key, "limit", "per")
		ok = false
	}
	over := true
	switch c.Match {
	case "", "over":
	case "under":
		over = false
	default:
		errs.Addf(fmt.Sprintf("unknown match %q (want over or under)", c.Match), key, "limit", "match")
		ok = false
	}
	if !ok {
		return nil
	}
	return newLimiter(*c, per, rate, burst, over)
}

// DefaultLimitBurst is a limit's burst when none is configured.
const DefaultLimitBurst = 5
