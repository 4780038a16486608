package policy

import (
	"fmt"
	"slices"
	"sort"
)

// Summary describes a compiled policy for `tungate check`.
type Summary struct {
	Rules        int
	Sets         []SetSummary // sorted by name
	PayloadRules []string     // rules that need the flow's payload
	L7Rules      []string     // rules with tls/http/dns keys (flows wait for the field)
	AuditRules   []string
	Limits       []string // rules with a limit
}

// SetSummary is one set: its type and size (configured elements; for a
// dynamic set its capacity).
type SetSummary struct {
	Name    string
	Type    string
	Size    int
	Dynamic bool
}

// Summary summarises the compiled policy.
func (p *Policy) Summary() Summary {
	s := Summary{Rules: len(p.rules)}
	for name, ns := range p.sets {
		ss := SetSummary{Name: name, Type: ns.typ, Size: ns.size}
		if ns.dyn != nil {
			ss.Dynamic = true
			ns.dyn.state.mu.RLock()
			ss.Size = ns.dyn.state.max
			ns.dyn.state.mu.RUnlock()
		}
		s.Sets = append(s.Sets, ss)
	}
	sort.Slice(s.Sets, func(i, j int) bool { return s.Sets[i].Name < s.Sets[j].Name })
	for i := range p.rules {
		r := &p.rules[i]
		if r.payload != nil {
			s.PayloadRules = append(s.PayloadRules, r.name)
		}
		if r.l7 != nil {
			s.L7Rules = append(s.L7Rules, r.name)
		}
		if r.audit {
			s.AuditRules = append(s.AuditRules, r.name)
		}
		if r.limit != nil {
			s.Limits = append(s.Limits, r.name)
		}
	}
	return s
}

// Shadow is a rule that can never decide or match because an earlier
// terminal rule matches every flow it would.
type Shadow struct {
	Rule, By         int
	RuleName, ByName string
}

func (s Shadow) String() string {
	return fmt.Sprintf("rule %q can never match: earlier rule %q matches every flow it would, and decides", s.RuleName, s.ByName)
}

// Shadowed lists rules shadowed by an earlier rule whose conditions are a
// superset of theirs and whose match always decides (no log, audit,
// payload, limit or max_conns). The check is conservative: it reports only
// provable cases (dynamic sets are never assumed to cover anything).
func (p *Policy) Shadowed() []Shadow {
	shapes := make([]shape, len(p.rules))
	for i := range p.rules {
		shapes[i] = shapeOf(&p.rules[i])
	}
	var out []Shadow
	for j := range p.rules {
		for i := range j {
			if p.covers(&p.rules[i], &p.rules[j], &shapes[i], &shapes[j]) {
				out = append(out, Shadow{Rule: j, By: i, RuleName: p.rules[j].name, ByName: p.rules[i].name})
				break
			}
		}
	}
	return out
}

// shape is a rule's conditions merged per key, for subset tests; a nil
// field is an absent key, dynamic marks a key with a dynamic set.
type shape struct {
	src, dst, notSrc, notDst                 *prefixSet
	dynamic                                  [4]bool
	srcPort, dstPort, notSrcPort, notDstPort *portSet
}

func shapeOf(r *rule) shape {
	var s shape
	for k, c := range []struct {
		c   addrCond
		dst **prefixSet
	}{{r.src, &s.src}, {r.dst, &s.dst}, {r.notSrc, &s.notSrc}, {r.notDst, &s.notDst}} {
		if c.c != nil {
			u, ok := staticUnion(c.c)
			*c.dst, s.dynamic[k] = u, !ok
		}
	}
	for _, c := range []struct {
		c   portCond
		dst **portSet
	}{{r.srcPort, &s.srcPort}, {r.dstPort, &s.dstPort}, {r.notSrcPort, &s.notSrcPort}, {r.notDstPort, &s.notDstPort}} {
		if c.c != nil {
			*c.dst = portUnion(c.c)
		}
	}
	return s
}

// covers reports whether every flow rule b matches is matched, and
// decided, by rule a.
func (p *Policy) covers(a, b *rule, sa, sb *shape) bool {
	if !a.terminal() || a.limit != nil || a.maxConns >= 0 {
		return false
	}
	if b.protos&^a.protos != 0 || b.ct&^a.ct != 0 {
		return false
	}
	if a.icmp != nil && (b.icmp == nil || !icmpSubset(b.icmp, a.icmp)) {
		return false
	}
	return within(sa.dstPort, sb.dstPort) && within(sa.srcPort, sb.srcPort) &&
		excludes(sa.notDstPort, sb.notDstPort) && excludes(sa.notSrcPort, sb.notSrcPort) &&
		addrWithin(sa.dst, sb.dst, sa.dynamic[1], sb.dynamic[1]) &&
		addrWithin(sa.src, sb.src, sa.dynamic[0], sb.dynamic[0]) &&
		addrExcludes(sa.notDst, sb.notDst, sa.dynamic[3], sb.dynamic[3]) &&
		addrExcludes(sa.notSrc, sb.notSrc, sa.dynamic[2], sb.dynamic[2])
}

// excludes: what a's not_* key excludes (nil = nothing) b's excludes too.
func excludes(a, b *portSet) bool {
	if a == nil {
		return true
	}
	return b != nil && portSubset(a, b)
}

func addrExcludes(a, b *prefixSet, aDyn, bDyn bool) bool {
	if a == nil && !aDyn {
		return true
	}
	if b == nil || aDyn || bDyn {
		return false
	}
	return a == b || prefixSubset(a, b)
}

// within: the wider condition outer (nil = everything) includes inner.
func within(outer, inner *portSet) bool {
	if outer == nil {
		return true
	}
	return inner != nil && portSubset(inner, outer)
}

func addrWithin(outer, inner *prefixSet, outerDyn, innerDyn bool) bool {
	if outer == nil && !outerDyn {
		return true
	}
	if inner == nil || outerDyn || innerDyn {
		return false
	}
	return outer == inner || prefixSubset(inner, outer)
}

func icmpSubset(b, a *icmpTypes) bool {
	for f := range b {
		for w := range b[f] {
			if b[f][w]&^a[f][w] != 0 {
				return false
			}
		}
	}
	return true
}

// staticUnion merges an address condition's static sets; ok is false when
// it has a dynamic set, whose content is unknown at compile time.
func staticUnion(c addrCond) (*prefixSet, bool) {
	if len(c) == 1 && c[0].pfx != nil {
		return c[0].pfx, true // shared with other rules naming the same set
	}
	var u prefixSet
	for _, s := range c {
		if s.dyn != nil {
			return nil, false
		}
		u.v4 = append(u.v4, s.pfx.v4...)
		u.v6 = append(u.v6, s.pfx.v6...)
	}
	u.v4 = merge4(slices.Clone(u.v4))
	u.v6 = merge6(slices.Clone(u.v6))
	return &u, true
}

// prefixSubset reports whether every address of b is in a.
func prefixSubset(b, a *prefixSet) bool {
	for _, r := range b.v4 {
		i, _ := slices.BinarySearchFunc(a.v4, r.lo, func(x range4, t uint32) int {
			if x.hi < t {
				return -1
			}
			if x.lo > t {
				return 1
			}
			return 0
		})
		if i >= len(a.v4) || a.v4[i].lo > r.lo || a.v4[i].hi < r.hi {
			return false
		}
	}
	for _, r := range b.v6 {
		// The last range of a starting at or before r.lo must hold r.
		i := sort.Search(len(a.v6), func(k int) bool { return r.lo.less(a.v6[k].lo) })
		if i == 0 || a.v6[i-1].hi.less(r.hi) {
			return false
		}
	}
	return true
}

func portUnion(c portCond) *portSet {
	if len(c) == 1 {
		return c[0]
	}
	var r []portRange
	for _, s := range c {
		r = append(r, s.r...)
	}
	return newPortSet(r)
}

func portSubset(b, a *portSet) bool {
	for _, r := range b.r {
		ok := false
		for _, x := range a.r {
			if x.lo <= r.lo && r.hi <= x.hi {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}
