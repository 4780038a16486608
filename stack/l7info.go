package stack

import (
	"sync"
	"time"

	"github.com/tungate/tungate/conntrack"
	"github.com/tungate/tungate/policy"
)

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

// maxL7Flows bounds the table. Beyond it a flow's fields are not recorded
// (its decisions still are logged), except the DNS verdicts UDP flows
// need, whose flows are dropped instead (fail closed).
const maxL7Flows = 65536

// l7Age is how long an entry whose flow has no running handler is kept
// before the janitor checks whether conntrack still has the flow.
const l7Age = 30 * time.Second

// l7Entry is one flow's record. dns is the SYN/first-datagram verdict of
// a UDP flow pending on dns.qname: gVisor calls the UDP handler again for
// the same tracked flow after an idle timeout, and that handler must
// filter the queries just like the first one.
type l7Entry struct {
	info L7Info
	dns  *armedFlow
	live int32     // handlers running for the flow
	at   time.Time // last update
	seen uint64    // janitor pass that last found the flow in conntrack
}

// l7Table is the stack's per-flow L7 record, beside conntrack (whose
// entries hold no pointers). Keys are original-direction conntrack keys.
type l7Table struct {
	mu   sync.Mutex // guards m, pass
	m    map[conntrack.Key]*l7Entry
	pass uint64
}

func newL7Table() *l7Table { return &l7Table{m: make(map[conntrack.Key]*l7Entry)} }

// entryLocked returns k's entry, creating it when there is room.
func (t *l7Table) entryLocked(k conntrack.Key, now time.Time) *l7Entry {
	e := t.m[k]
	if e == nil {
		if len(t.m) >= maxL7Flows {
			return nil
		}
		e = &l7Entry{}
		t.m[k] = e
	}
	e.at = now
	return e
}

// keepDNS stores the verdict of a new UDP flow pending on dns.qname,
// replacing what an earlier flow of the same tuple left; false when the
// table is full.
func (t *l7Table) keepDNS(k conntrack.Key, a armedFlow) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entryLocked(k, a.at)
	if e == nil {
		return false
	}
	*e = l7Entry{dns: &a, at: a.at, live: e.live}
	return true
}

// forget drops k's entry: a new flow of the same tuple was allowed without
// a DNS verdict, so an older flow's must not apply to it.
func (t *l7Table) forget(k conntrack.Key) {
	t.mu.Lock()
	delete(t.m, k)
	t.mu.Unlock()
}

// dnsVerdict returns the DNS verdict kept for k.
func (t *l7Table) dnsVerdict(k conntrack.Key) (armedFlow, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.m[k]; e != nil && e.dns != nil {
		return *e.dns, true
	}
	return armedFlow{}, false
}

// start and stop bracket a handler of k, so the janitor leaves the entry
// alone while the flow is being served.
func (t *l7Table) start(k conntrack.Key) {
	t.mu.Lock()
	if e := t.entryLocked(k, time.Now()); e != nil {
		e.live++
	}
	t.mu.Unlock()
}

func (t *l7Table) stop(k conntrack.Key) {
	t.mu.Lock()
	if e := t.m[k]; e != nil {
		e.live--
		e.at = time.Now()
		if e.live <= 0 && e.dns == nil && e.info == (L7Info{}) {
			delete(t.m, k)
		}
	}
	t.mu.Unlock()
}

// record merges what a decision read into k's entry: non-empty fields
// replace the old ones (an earlier first query name is kept unless the new
// name decided a refusal), and a deciding rule replaces the earlier one.
func (t *l7Table) record(k conntrack.Key, field policy.L7Field, value, rule, action string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entryLocked(k, time.Now())
	if e == nil {
		return
	}
	switch field {
	case policy.FieldSNI:
		e.info.SNI = value
	case policy.FieldHTTPHost:
		e.info.HTTPHost = value
	case policy.FieldDNSQName:
		e.info.DNSQName = value
	}
	if rule != "" || action != "" {
		e.info.Rule, e.info.Action = rule, action
	}
}

// recordFirst sets field only when the entry has none yet.
func (t *l7Table) recordFirst(k conntrack.Key, field policy.L7Field, value string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entryLocked(k, time.Now())
	if e == nil {
		return
	}
	switch {
	case field == policy.FieldSNI && e.info.SNI == "":
		e.info.SNI = value
	case field == policy.FieldHTTPHost && e.info.HTTPHost == "":
		e.info.HTTPHost = value
	case field == policy.FieldDNSQName && e.info.DNSQName == "":
		e.info.DNSQName = value
	}
}

// hasDNSName reports whether k's entry already records a query name, so
// the caller can skip building one.
func (t *l7Table) hasDNSName(k conntrack.Key) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.m[k]
	return e != nil && e.info.DNSQName != ""
}

func (t *l7Table) get(k conntrack.Key) (L7Info, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.m[k]
	if e == nil || e.info == (L7Info{}) {
		return L7Info{}, false
	}
	return e.info, true
}

func (t *l7Table) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// prune forgets entries without a running handler, older than l7Age,
// whose flow conntrack no longer has. Like pruneArmed, it walks conntrack
// only when some entry is old enough to go.
func (t *l7Table) prune(ct *conntrack.Table, now time.Time) {
	t.mu.Lock()
	old := false
	for _, e := range t.m {
		if e.live <= 0 && now.Sub(e.at) > l7Age {
			old = true
			break
		}
	}
	t.pass++
	pass := t.pass
	t.mu.Unlock()
	if !old {
		return
	}
	ct.Range(func(fi conntrack.FlowInfo) bool {
		t.mu.Lock()
		if e := t.m[fi.Orig]; e != nil {
			e.seen = pass
		}
		t.mu.Unlock()
		return true
	})
	t.mu.Lock()
	for k, e := range t.m {
		if e.live <= 0 && e.seen != pass && now.Sub(e.at) > l7Age {
			delete(t.m, k)
		}
	}
	t.mu.Unlock()
}

// FlowL7 returns what inspection recorded about the flow whose
// original-direction key is k (as conntrack.FlowInfo.Orig), for the
// control socket's listing.
func (s *Stack) FlowL7(k conntrack.Key) (L7Info, bool) { return s.l7.get(k) }
