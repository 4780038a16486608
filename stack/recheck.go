package stack

import (
	"sync"
	"sync/atomic"

	"github.com/tungate/tungate/conntrack"
	"github.com/tungate/tungate/policy"
)

// recheckShards spreads the pending set's locks; the readers contend on it
// only while a recheck is in progress.
const recheckShards = 64

// recheckSet holds the flows a reload with [reload] existing_flows =
// "recheck" found in conntrack: each is decided again on its next inbound
// packet, then leaves the set. The packet path pays one atomic load while
// the set is empty, which is always except after such a reload; flows that
// never send again are pruned once they left conntrack.
type recheckSet struct {
	pending atomic.Int64 // entries in all shards
	shards  [recheckShards]recheckShard
}

type recheckShard struct {
	mu sync.Mutex               // guards m
	m  map[conntrack.Key]uint64 // original-direction key -> janitor pass that last saw the flow
	_  [cacheLinePad]byte
}

const cacheLinePad = 64

func (r *recheckSet) shard(k *conntrack.Key) *recheckShard {
	return &r.shards[flowHash(k)%recheckShards]
}

// mark replaces the set with every allowed flow now in ct: a new reload
// supersedes an unfinished recheck, whose flows it includes anyway.
func (r *recheckSet) mark(ct *conntrack.Table) {
	var fresh [recheckShards]map[conntrack.Key]uint64
	var n int64
	ct.Range(func(fi conntrack.FlowInfo) bool {
		if policy.Action(fi.Verdict.Action) != policy.ActionAllow {
			return true // already ending
		}
		i := flowHash(&fi.Orig) % recheckShards
		if fresh[i] == nil {
			fresh[i] = make(map[conntrack.Key]uint64)
		}
		fresh[i][fi.Orig] = 0
		n++
		return true
	})
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.Lock()
		old := int64(len(sh.m))
		sh.m = fresh[i]
		sh.mu.Unlock()
		r.pending.Add(int64(len(fresh[i])) - old)
	}
}

// take removes k from the set and reports whether it was there.
func (r *recheckSet) take(k *conntrack.Key) bool {
	sh := r.shard(k)
	sh.mu.Lock()
	_, ok := sh.m[*k]
	if ok {
		delete(sh.m, *k)
	}
	sh.mu.Unlock()
	if ok {
		r.pending.Add(-1)
	}
	return ok
}

// prune drops entries whose flow left ct (it expired or was deleted
// before sending again). pass must grow with each call.
func (r *recheckSet) prune(ct *conntrack.Table, pass uint64) {
	if r.pending.Load() == 0 {
		return
	}
	ct.Range(func(fi conntrack.FlowInfo) bool {
		sh := r.shard(&fi.Orig)
		sh.mu.Lock()
		if _, ok := sh.m[fi.Orig]; ok {
			sh.m[fi.Orig] = pass
		}
		sh.mu.Unlock()
		return true
	})
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.Lock()
		for k, seen := range sh.m {
			if seen != pass {
				delete(sh.m, k)
				r.pending.Add(-1)
			}
		}
		sh.mu.Unlock()
	}
}

// recheck decides again, under the current policy and as an established
// flow, the tracked flow packet p belongs to, if a reload asked for it and
// this is the flow's first packet since. It returns true with the action
// when the flow is no longer allowed and was torn down.
func (s *Stack) recheck(pol *policy.Policy, p *parsed, res *conntrack.Result) (hookAction, bool) {
	orig := origKey(&p.ct.Key, res.Dir)
	if !s.rechecks.take(&orig) {
		return hookDrop, false
	}
	f := s.flowOfKey(&orig, p.family)
	if orig.Proto == protoICMP {
		f.ICMPType = 8
	} else if orig.Proto == protoICMPv6 {
		f.ICMPType = 128
	}
	f.CtState = policy.CtEstablished
	v := pol.Decide(&f)
	if v.Action == policy.ActionAllow {
		if v.RuleID != res.Verdict.Rule {
			// Count the flow's packets against the rule that allows it now.
			s.ct.SetVerdict(orig, conntrack.Verdict{Action: uint8(policy.ActionAllow), Rule: v.RuleID})
			res.Verdict.Rule = v.RuleID
		}
		return hookDrop, false
	}
	s.ct.SetVerdict(orig, conntrack.Verdict{Action: uint8(v.Action), Rule: v.RuleID})
	s.flowReg.end(orig)
	s.ctr.recheckTeardowns.Add(1)
	s.logKey(pol.RuleNameAt(v.Rule), v.Action.String(), &orig, reasonRecheck, "")
	return hookDrop, true
}
