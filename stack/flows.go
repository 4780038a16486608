package stack

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"github.com/tungate/tungate/conntrack"
	"github.com/tungate/tungate/policy"
)

// maxArmed bounds the SYN-time verdicts kept for inspected TCP flows until
// their forwarder handler runs. Beyond it such SYNs are dropped (fail
// closed: without the verdict the payload rules could not be enforced).
const maxArmed = 65536

// armedAge is how old a kept verdict must be before the janitor checks
// whether its flow still exists.
const armedAge = 30 * time.Second

// janitorEvery is how often Run's janitor prunes the flow registries and
// summarises suppressed log lines.
const janitorEvery = suppressedEvery

// armedFlow is the verdict a TCP flow's SYN got, kept for the forwarder
// handler, which must not call Decide again (it takes limit tokens): it
// needs the policy that decided (rule indices are per policy) and the
// verdict to arm its inspector.
type armedFlow struct {
	pol  *policy.Policy
	v    policy.Verdict
	at   time.Time
	seen uint64 // janitor pass that last found the flow in conntrack
}

// flowRegistry is what the stack knows per flow beyond conntrack: the
// cancel of each running relay (so a flush or a reload recheck can end it)
// and the SYN-time verdicts of inspected flows awaiting their handler.
// Keys are conntrack keys of the original direction.
type flowRegistry struct {
	mu     sync.Mutex // guards relays, armed, pass
	relays map[conntrack.Key]*relayHandle
	armed  map[conntrack.Key]armedFlow
	pass   uint64
}

// relayHandle is one registered relay; its pointer identifies the
// registration.
type relayHandle struct{ cancel context.CancelFunc }

func newFlowRegistry() *flowRegistry {
	return &flowRegistry{
		relays: make(map[conntrack.Key]*relayHandle),
		armed:  make(map[conntrack.Key]armedFlow),
	}
}

// keep stores a SYN-time verdict; false when the registry is full.
func (r *flowRegistry) keep(k conntrack.Key, a armedFlow) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.armed[k]; !ok && len(r.armed) >= maxArmed {
		return false
	}
	r.armed[k] = a
	return true
}

// take removes and returns the SYN-time verdict of k.
func (r *flowRegistry) take(k conntrack.Key) (armedFlow, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a, ok := r.armed[k]
	delete(r.armed, k)
	return a, ok
}

// register records the cancel of k's relay; the returned func removes it.
// A flow reopened on the same tuple replaces the entry, and only the
// newer relay's removal deletes it.
func (r *flowRegistry) register(k conntrack.Key, cancel context.CancelFunc) func() {
	h := &relayHandle{cancel: cancel}
	r.mu.Lock()
	r.relays[k] = h
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		if r.relays[k] == h {
			delete(r.relays, k)
		}
		r.mu.Unlock()
	}
}

// end cancels k's relay (TCP: both sides reset; UDP: both sockets closed)
// and forgets its kept verdict. It reports whether a relay was running.
func (r *flowRegistry) end(k conntrack.Key) bool {
	r.mu.Lock()
	h, ok := r.relays[k]
	delete(r.relays, k)
	delete(r.armed, k)
	r.mu.Unlock()
	if ok {
		h.cancel()
	}
	return ok
}

// pruneArmed forgets kept verdicts older than armedAge whose flow left
// conntrack without its handler ever running (gVisor dropped the SYN and
// the client gave up).
func (r *flowRegistry) pruneArmed(ct *conntrack.Table, now time.Time) {
	r.mu.Lock()
	old := false
	for _, a := range r.armed {
		if now.Sub(a.at) > armedAge {
			old = true
			break
		}
	}
	r.pass++
	pass := r.pass
	r.mu.Unlock()
	if !old {
		return
	}
	ct.Range(func(fi conntrack.FlowInfo) bool {
		r.mu.Lock()
		if a, ok := r.armed[fi.Orig]; ok {
			a.seen = pass
			r.armed[fi.Orig] = a
		}
		r.mu.Unlock()
		return true
	})
	r.mu.Lock()
	for k, a := range r.armed {
		if a.seen != pass && now.Sub(a.at) > armedAge {
			delete(r.armed, k)
		}
	}
	r.mu.Unlock()
}

// origKey is the conntrack key of the original direction of the flow a
// packet travelling in dir belongs to.
func origKey(k *conntrack.Key, dir conntrack.Dir) conntrack.Key {
	if dir == conntrack.DirOriginal {
		return *k
	}
	r := conntrack.Key{Src: k.Dst, Dst: k.Src, Proto: k.Proto, Family: k.Family, SrcPort: k.DstPort, DstPort: k.SrcPort}
	if k.Proto == protoICMP || k.Proto == protoICMPv6 {
		r.SrcPort, r.DstPort = k.SrcPort, 0
	}
	return r
}

// keyAddr returns the source or destination address of k.
func keyAddr(k *conntrack.Key, src bool) netip.Addr {
	if src {
		return addrOf(&k.Src, k.Family)
	}
	return addrOf(&k.Dst, k.Family)
}
