package policy

import (
	"cmp"
	"slices"
)

// maxIndexedPorts bounds how many exact ports one rule may contribute to
// the dst_port index; rules covering more (wide ranges, big port sets) stay
// in the wild list, which keeps the index at most this many entries per rule.
const maxIndexedPorts = 64

// classIndex holds the rules of one protocol class in a form that lets
// Decide skip rules that cannot match the flow's destination port: a rule
// whose dst_port lists few ports is filed under each of them, every other
// rule is wild. Candidates for a flow are the wild rules merged, in file
// order, with the rules filed under its destination port.
type classIndex struct {
	wild  []int32
	keys  []uint16 // sorted destination ports with filed rules
	start []int32  // rules for keys[i] are flat[start[i]:start[i+1]]
	flat  []int32
}

type portEntry struct {
	port uint16
	rule int32
}

func buildClassIndex(rules []rule, members []int32) classIndex {
	var ci classIndex
	var entries []portEntry
	for _, ri := range members {
		r := &rules[ri]
		n := 0
		for _, s := range r.dstPort {
			for _, pr := range s.r {
				n += int(pr.hi) - int(pr.lo) + 1
			}
		}
		if r.dstPort == nil || n > maxIndexedPorts {
			ci.wild = append(ci.wild, ri)
			continue
		}
		for _, s := range r.dstPort {
			for _, pr := range s.r {
				for p := int(pr.lo); p <= int(pr.hi); p++ {
					entries = append(entries, portEntry{uint16(p), ri})
				}
			}
		}
	}
	slices.SortFunc(entries, func(a, b portEntry) int {
		return cmp.Or(cmp.Compare(a.port, b.port), cmp.Compare(a.rule, b.rule))
	})
	entries = slices.Compact(entries) // a port listed twice files the rule once
	for i, e := range entries {
		if i == 0 || e.port != entries[i-1].port {
			ci.keys = append(ci.keys, e.port)
			ci.start = append(ci.start, int32(len(ci.flat)))
		}
		ci.flat = append(ci.flat, e.rule)
	}
	ci.start = append(ci.start, int32(len(ci.flat)))
	return ci
}

// filed returns the rules filed under port, in file order.
func (ci *classIndex) filed(port uint16) []int32 {
	k := ci.keys
	lo, hi := 0, len(k)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if k[m] < port {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == len(k) || k[lo] != port {
		return nil
	}
	return ci.flat[ci.start[lo]:ci.start[lo+1]]
}

// candidates merges two ascending, disjoint lists of rule indices.
type candidates struct{ a, b []int32 }

func (p *Policy) candidates(proto uint8, dport uint16) candidates {
	ci := &p.byProto[protoClass(proto)]
	return candidates{ci.wild, ci.filed(dport)}
}

func (c *candidates) next() (int32, bool) {
	switch {
	case len(c.a) > 0 && (len(c.b) == 0 || c.a[0] < c.b[0]):
		x := c.a[0]
		c.a = c.a[1:]
		return x, true
	case len(c.b) > 0:
		x := c.b[0]
		c.b = c.b[1:]
		return x, true
	}
	return 0, false
}
