package policy

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/tungate/tungate/internal/cfgerr"
)

// Protocol classes index Policy.byProto.
const (
	classOther = iota
	classTCP
	classUDP
	classICMP
	classICMPv6
	numProtoClasses
)

const (
	protoBitTCP    = 1 << classTCP
	protoBitUDP    = 1 << classUDP
	protoAll       = 1<<numProtoClasses - 1
	protoBitsPorts = protoBitTCP | protoBitUDP
)

func protoClass(proto uint8) int {
	switch proto {
	case 6:
		return classTCP
	case 17:
		return classUDP
	case 1:
		return classICMP
	case 58:
		return classICMPv6
	}
	return classOther
}

// rule is a compiled [[rule]].
type rule struct {
	name   string
	id     uint32
	action Action // meaningless when isLog
	isLog  bool   // action = "log": note and continue
	reject rejectWith
	log    bool
	protos uint8 // bit per protocol class

	// dstMin and dstMax bound dstPort, to reject most rules of a long walk
	// without following pointers into the port sets.
	dstMin, dstMax uint16

	src, dst, notSrc, notDst     addrCond
	srcPort, dstPort, notDstPort portCond

	payload []pattern // non-empty: the rule is armed, never decides in Decide
}

// matchL34 is the allocation-free L3/L4 part of a rule; the protocol was
// already matched by the byProto dispatch. Ports are only present on
// tcp/udp rules, so a flow reaching a port check is tcp or udp.
func (r *rule) matchL34(src, dst netip.Addr, sport, dport uint16) bool {
	if r.dstPort != nil && (dport < r.dstMin || dport > r.dstMax || !r.dstPort.match(dport)) {
		return false
	}
	if r.notDstPort != nil && r.notDstPort.match(dport) {
		return false
	}
	if r.srcPort != nil && !r.srcPort.match(sport) {
		return false
	}
	if r.dst != nil && !r.dst.match(dst) {
		return false
	}
	if r.src != nil && !r.src.match(src) {
		return false
	}
	if r.notDst != nil && r.notDst.match(dst) {
		return false
	}
	if r.notSrc != nil && r.notSrc.match(src) {
		return false
	}
	return true
}

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

	protoOK := p.compileProto(rc.Proto, r, key, errs)

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

	rw, ok := parseRejectWith(rc.RejectWith)
	switch {
	case !ok:
		errs.Addf(fmt.Sprintf("unknown reject_with %q (want auto, tcp-reset or icmp-port-unreachable)", rc.RejectWith), key, "reject_with")
	case rc.RejectWith == "":
		r.reject = p.defReject
	case rc.Action != "reject":
		errs.Addf(`reject_with needs action = "reject"`, key, "reject_with")
	case rw == rejectWithTCPReset && protoOK && r.protos != protoBitTCP:
		errs.Addf(`reject_with = "tcp-reset" needs proto = "tcp"`, key, "reject_with")
	default:
		r.reject = rw
	}

	for j, pc := range rc.Payload {
		pt, err := compilePattern(pc)
		if err != nil {
			errs.Add(cfgerr.New(err.msg, key, "payload", j, err.key))
			continue
		}
		r.payload = append(r.payload, pt)
	}
	if len(rc.Payload) > 0 && r.isLog {
		errs.Addf(`payload rules need action allow, drop or reject`, key, "action")
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
			r.protos |= 1 << classICMP
		case "icmpv6":
			r.protos |= 1 << classICMPv6
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
				c = append(c, ns.prefix)
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
		c = append(addrCond{newPrefixSet(inline)}, c...)
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
