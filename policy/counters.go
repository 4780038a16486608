package policy

import (
	"sync/atomic"
	"time"
)

// ruleCounter is shared by pointer between a policy and the policies that
// carry it over on reload, so established flows still counted against the
// old policy keep adding to the same totals.
type ruleCounter struct {
	flows, packets, bytes atomic.Uint64
	last                  atomic.Int64 // unix nanoseconds of the last flow, 0 = never
}

// RuleCounter is a snapshot of one rule's counters.
type RuleCounter struct {
	Name    string // "default" for defaults.policy
	ID      uint32 // 0 for defaults.policy
	Flows   uint64
	Packets uint64
	Bytes   uint64
	Last    time.Time // zero when the rule never decided a flow
}

func (p *Policy) counter(rule int) *ruleCounter {
	if rule < 0 {
		return p.counters[len(p.counters)-1]
	}
	if rule >= len(p.rules) {
		return nil
	}
	return p.counters[rule]
}

// CountFlow counts a flow decided by rule index rule (-1: defaults.policy).
func (p *Policy) CountFlow(rule int) {
	if c := p.counter(rule); c != nil {
		c.flows.Add(1)
		c.last.Store(time.Now().UnixNano())
	}
}

// CountPacket counts one packet of size bytes on a flow decided by rule.
func (p *Policy) CountPacket(rule int, bytes int) {
	if c := p.counter(rule); c != nil {
		c.packets.Add(1)
		c.bytes.Add(uint64(max(bytes, 0)))
	}
}

// CountPacketByID counts one packet of size bytes on a flow whose cached
// verdict names the rule by its stable ID (0: defaults.policy). A flow
// decided by a rule this policy no longer has is not counted. It does not
// allocate.
func (p *Policy) CountPacketByID(id uint32, bytes int) {
	var c *ruleCounter
	switch {
	case id == 0:
		c = p.counters[len(p.counters)-1]
	case int(id) < len(p.byID) && p.byID[id] != 0:
		c = p.counters[p.byID[id]-1]
	default:
		return
	}
	c.packets.Add(1)
	c.bytes.Add(uint64(max(bytes, 0)))
}

// indexIDs builds byID. IDs are interned process-wide from 1, so the
// slice is as long as the largest ID among this policy's rules.
func (p *Policy) indexIDs() {
	var top uint32
	for i := range p.rules {
		top = max(top, p.rules[i].id)
	}
	p.byID = make([]int32, top+1)
	for i := range p.rules {
		p.byID[p.rules[i].id] = int32(i + 1)
	}
}

// Counters returns a snapshot of every rule's counters in file order,
// followed by the default policy's.
func (p *Policy) Counters() []RuleCounter {
	out := make([]RuleCounter, len(p.counters))
	for i, c := range p.counters {
		rc := RuleCounter{Name: "default"}
		if i < len(p.rules) {
			rc.Name, rc.ID = p.rules[i].name, p.rules[i].id
		}
		rc.Flows, rc.Packets, rc.Bytes = c.flows.Load(), c.packets.Load(), c.bytes.Load()
		if ns := c.last.Load(); ns != 0 {
			rc.Last = time.Unix(0, ns)
		}
		out[i] = rc
	}
	return out
}

// CarryCountersFrom makes p continue old's runtime state: the counters of
// rules with the same names (and of the default policy), the contents of
// dynamic sets with the same name and type, and the token buckets of
// rules with the same name and an identical limit. Call it before p is
// published: it is not safe concurrently with p's other methods.
func (p *Policy) CarryCountersFrom(old *Policy) {
	if old == nil || old == p {
		return
	}
	byName := make(map[string]int, len(old.rules))
	for i := range old.rules {
		byName[old.rules[i].name] = i
	}
	for i := range p.rules {
		j, ok := byName[p.rules[i].name]
		if !ok {
			continue
		}
		p.counters[i] = old.counters[j]
		if nl, ol := p.rules[i].limit, old.rules[j].limit; nl != nil && ol != nil && nl.cfg == ol.cfg {
			p.rules[i].limit = ol
		}
	}
	p.counters[len(p.counters)-1] = old.counters[len(old.counters)-1]
	p.carryDynamic(old)
}
