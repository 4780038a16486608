package verdict

import (
	"context"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/tungate/tungate/conntrack"
	"github.com/tungate/tungate/policy"
	"github.com/tungate/tungate/stack/packet"
)

// flowShards spreads the records' locks: every new flow takes one, and
// conntrack's OnDestroy another, from both readers at once.
const flowShards = 64

// Flows is the data plane's per-flow state beside conntrack: one Flow for
// each committed flow, created by Apply when the flow's first packet is
// committed and removed by Forget, which conntrack calls (OnDestroy) when
// the flow leaves its table. So a record lives exactly as long as its
// flow, and nothing walks conntrack to prune records.
//
// Lock order: a conntrack shard lock (held around OnDestroy), then a
// Flows shard lock, then a Flow's own lock. Nothing here calls conntrack
// while holding a Flows or Flow lock.
type Flows struct {
	shards [flowShards]flowShard
	// rechecking counts records marked for a recheck (MarkRecheck): the
	// packet path pays one atomic load while it is zero, which is always
	// except after a reload that asked for a recheck.
	rechecking atomic.Int64
}

type flowShard struct {
	mu sync.Mutex // guards m
	m  map[conntrack.Key]*Flow
	_  [64]byte // keep neighbouring shards' locks off one cache line
}

// NewFlows returns an empty set of records.
func NewFlows() *Flows {
	f := &Flows{}
	for i := range f.shards {
		f.shards[i].m = make(map[conntrack.Key]*Flow)
	}
	return f
}

// Flow is one flow's record. Its methods are safe for concurrent use.
type Flow struct {
	key conntrack.Key // original direction

	mu sync.Mutex // guards the fields below
	// armed is the verdict the first packet got, kept when a forwarder
	// handler needs it: an inspected or pending TCP flow (taken once by
	// its handler, which must not call Decide again: Decide takes limit
	// tokens), or a UDP flow pending on dns.qname (kept for the flow's
	// life: gVisor calls the UDP handler again after an idle timeout, and
	// every query must be decided).
	armed    *Armed
	keepDNS  bool
	relay    *relayHandle // the running relay, nil when none
	l7       L7Info
	named    bool // a DNS flow's first allowed query renamed its cached verdict
	recheck  bool // a reload asked to decide this flow again (MarkRecheck)
	ended    bool // refused after it opened (a stream hit, a recheck): its packets go nowhere
	finished bool // Forget ran: the flow left conntrack
}

// Armed is the verdict a flow's first packet got and the policy that gave
// it (rule indices are per policy).
type Armed struct {
	Policy  *policy.Policy
	Verdict policy.Verdict
}

// relayHandle identifies one relay's registration: a flow's handler may
// run again for the same flow (UDP after an idle timeout), and only the
// newer registration's end may clear it.
type relayHandle struct{ cancel context.CancelFunc }

func (f *Flows) shard(k *conntrack.Key) *flowShard {
	return &f.shards[packet.FlowHash(k)%flowShards]
}

// open creates k's record, replacing one an earlier flow of the same tuple
// left (it cannot: conntrack reported that flow's end first; replacing
// keeps a bug there from leaking here).
func (f *Flows) open(k conntrack.Key, armed *Armed, keepDNS bool) *Flow {
	fl := &Flow{key: k, armed: armed, keepDNS: keepDNS}
	sh := f.shard(&k)
	sh.mu.Lock()
	old := sh.m[k]
	sh.m[k] = fl
	sh.mu.Unlock()
	if old != nil {
		f.finish(old)
	}
	return fl
}

// Get returns the record of the flow with original-direction key k, nil
// when conntrack has no such flow.
func (f *Flows) Get(k conntrack.Key) *Flow {
	sh := f.shard(&k)
	sh.mu.Lock()
	fl := sh.m[k]
	sh.mu.Unlock()
	return fl
}

// Forget removes k's record: conntrack calls it (Options.OnDestroy) when
// the flow leaves the table. A relay still running goes on (its flow's
// packets no longer reach it, as before this table existed); its record
// is simply no longer findable.
func (f *Flows) Forget(k conntrack.Key, _ conntrack.DestroyReason) {
	sh := f.shard(&k)
	sh.mu.Lock()
	fl := sh.m[k]
	delete(sh.m, k)
	sh.mu.Unlock()
	if fl != nil {
		f.finish(fl)
	}
}

// finish marks a removed record, releasing its recheck mark.
func (f *Flows) finish(fl *Flow) {
	fl.mu.Lock()
	fl.finished = true
	marked := fl.recheck
	fl.recheck = false
	fl.mu.Unlock()
	if marked {
		f.rechecking.Add(-1)
	}
}

// Len is the number of records.
func (f *Flows) Len() int {
	n := 0
	for i := range f.shards {
		sh := &f.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}

// each calls fn for every record, one shard at a time, without holding a
// lock while fn runs.
func (f *Flows) each(fn func(*Flow)) {
	var batch []*Flow
	for i := range f.shards {
		sh := &f.shards[i]
		sh.mu.Lock()
		batch = batch[:0]
		for _, fl := range sh.m {
			batch = append(batch, fl)
		}
		sh.mu.Unlock()
		for _, fl := range batch {
			fn(fl)
		}
	}
}

// matching returns the records whose source (src) or destination is addr.
func (f *Flows) matching(addr netip.Addr, src bool) []*Flow {
	var out []*Flow
	f.each(func(fl *Flow) {
		a := fl.key.DstAddr()
		if src {
			a = fl.key.SrcAddr()
		}
		if a == addr {
			out = append(out, fl)
		}
	})
	return out
}

// Key is the flow's original-direction key.
func (fl *Flow) Key() conntrack.Key { return fl.key }

// TakeArmed returns the verdict a TCP flow's first packet got, once: the
// forwarder handler takes it and nobody else needs it afterwards.
func (fl *Flow) TakeArmed() (Armed, bool) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if fl.armed == nil || fl.keepDNS {
		return Armed{}, false
	}
	a := *fl.armed
	fl.armed = nil
	return a, true
}

// DNSVerdict returns the verdict of a UDP flow pending on dns.qname, kept
// for the flow's life.
func (fl *Flow) DNSVerdict() (Armed, bool) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if fl.armed == nil || !fl.keepDNS {
		return Armed{}, false
	}
	return *fl.armed, true
}

// SetRelay registers the cancel of the flow's relay, so a flush or a
// recheck can end it; the returned func unregisters it (only this
// registration: a later handler of the same flow may have replaced it).
func (fl *Flow) SetRelay(cancel context.CancelFunc) (unregister func()) {
	h := &relayHandle{cancel: cancel}
	fl.mu.Lock()
	fl.relay = h
	fl.mu.Unlock()
	return func() {
		fl.mu.Lock()
		if fl.relay == h {
			fl.relay = nil
		}
		fl.mu.Unlock()
	}
}

// end cancels the flow's relay (TCP: both sides reset; UDP: both sockets
// closed) and drops a verdict kept for a handler that has not run yet, so
// it never starts one. It reports whether a relay was running.
func (fl *Flow) end() bool {
	fl.mu.Lock()
	h := fl.relay
	fl.relay = nil
	fl.armed = nil
	fl.ended = true
	fl.mu.Unlock()
	if h != nil {
		h.cancel()
	}
	return h != nil
}

// L7 returns what inspection recorded about the flow.
func (fl *Flow) L7() (L7Info, bool) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	return fl.l7, fl.l7 != (L7Info{})
}

// hasDNSName reports whether a query name is recorded already, so the
// caller can skip building one.
func (fl *Flow) hasDNSName() bool {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	return fl.l7.DNSQName != ""
}

// nameOnce reports whether this is the first call: a DNS flow's first
// allowed query renames its cached verdict, later ones leave it.
func (fl *Flow) nameOnce() bool {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	first := !fl.named
	fl.named = true
	return first
}

// Kept is the number of verdicts kept for forwarder handlers that have not
// taken them yet (DNS flows' life-long verdicts excluded).
func (f *Flows) Kept() int {
	n := 0
	f.each(func(fl *Flow) {
		fl.mu.Lock()
		if fl.armed != nil && !fl.keepDNS {
			n++
		}
		fl.mu.Unlock()
	})
	return n
}

// markEnded records that the flow was refused after it opened, by a hit
// its relay acts on itself.
func (fl *Flow) markEnded() {
	fl.mu.Lock()
	fl.ended = true
	fl.mu.Unlock()
}
