package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// dynSet is a dynamic cidr set as one compiled policy sees it. Its
// elements live in state, which a reload hands from the old policy to the
// new one (CarryCountersFrom), so a ban list survives reloads.
type dynSet struct {
	timeout time.Duration // default lifetime of an element
	state   *dynState
}

// dynState is the runtime content of a dynamic set, shared by every policy
// compiled from a configuration that declares the set.
type dynState struct {
	mu  sync.RWMutex         // guards m and max
	m   map[netip.Addr]int64 // unmapped address -> expiry, unix ns
	max int                  // capacity
	typ string               // "cidr": the state is carried only to a set of the same type
	rej atomic.Uint64        // additions refused because the set was full
}

// dynPresize bounds the map's initial capacity: a big max_elements should
// not cost memory before anything is added.
const dynPresize = 1024

func newDynSet(timeout time.Duration, max int) *dynSet {
	return &dynSet{timeout: timeout, state: &dynState{
		m:   make(map[netip.Addr]int64, min(max, dynPresize)),
		max: max,
		typ: "cidr",
	}}
}

func (d *dynSet) contains(a netip.Addr, now int64) bool {
	st := d.state
	st.mu.RLock()
	exp, ok := st.m[a]
	st.mu.RUnlock()
	return ok && exp > now
}

// ErrSetFull is returned when a dynamic set holds max_elements live
// elements.
var ErrSetFull = errors.New("set is full")

// add inserts or refreshes a (unmapped) until now+timeout. A full set first
// drops its expired elements; if none expired the addition is refused,
// so an attacker cannot evict the bans already in place.
func (d *dynSet) add(a netip.Addr, now int64, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = d.timeout
	}
	exp := now + int64(timeout)
	st := d.state
	st.mu.Lock()
	defer st.mu.Unlock()
	if old, ok := st.m[a]; ok {
		st.m[a] = max(old, exp)
		return nil
	}
	if len(st.m) >= st.max {
		for k, e := range st.m {
			if e <= now {
				delete(st.m, k)
			}
		}
		if len(st.m) >= st.max {
			st.rej.Add(1)
			return ErrSetFull
		}
	}
	st.m[a] = exp
	return nil
}

func (d *dynSet) del(a netip.Addr) bool {
	st := d.state
	st.mu.Lock()
	defer st.mu.Unlock()
	_, ok := st.m[a]
	delete(st.m, a)
	return ok
}

// SetEntry is one element of a set as listed by SetList.
type SetEntry struct {
	Elem    string
	Expires time.Time // zero for static elements
}

func (p *Policy) dynamicSet(name string) (*dynSet, error) {
	ns, ok := p.sets[name]
	switch {
	case !ok:
		return nil, fmt.Errorf("unknown set %q", name)
	case ns.dyn == nil:
		return nil, fmt.Errorf("set %q is not dynamic", name)
	}
	return ns.dyn, nil
}

// dynElem resolves the dynamic set name and the address elem that SetAdd
// and SetDel act on.
func (p *Policy) dynElem(name, elem string) (*dynSet, netip.Addr, error) {
	d, err := p.dynamicSet(name)
	if err != nil {
		return nil, netip.Addr{}, err
	}
	a, err := netip.ParseAddr(elem)
	if err != nil || a.Zone() != "" {
		return nil, netip.Addr{}, fmt.Errorf("set %q: invalid address %q", name, elem)
	}
	return d, a.Unmap(), nil
}

// SetAdd puts address elem into dynamic set name for timeout (0: the set's
// timeout); an element already present gets the later expiry. It is safe
// concurrently with Decide.
func (p *Policy) SetAdd(name, elem string, timeout time.Duration) error {
	d, a, err := p.dynElem(name, elem)
	if err != nil {
		return err
	}
	if timeout < 0 {
		return fmt.Errorf("set %q: negative timeout", name)
	}
	if err := d.add(a, p.now(), timeout); err != nil {
		return fmt.Errorf("set %q: %w", name, err)
	}
	return nil
}

// SetDel removes address elem from dynamic set name.
func (p *Policy) SetDel(name, elem string) error {
	d, a, err := p.dynElem(name, elem)
	if err != nil {
		return err
	}
	if !d.del(a) {
		return fmt.Errorf("set %q: %s is not in the set", name, elem)
	}
	return nil
}

// SetList lists a set: the live elements of a dynamic set with their
// expiry (sorted by address), or a static set's elements as compiled
// (merged ranges for cidr and port sets).
func (p *Policy) SetList(name string) ([]SetEntry, error) {
	ns, ok := p.sets[name]
	if !ok {
		return nil, fmt.Errorf("unknown set %q", name)
	}
	var out []SetEntry
	switch {
	case ns.dyn != nil:
		now := p.now()
		st := ns.dyn.state
		st.mu.RLock()
		addrs := make([]netip.Addr, 0, len(st.m))
		for a, e := range st.m {
			if e > now {
				addrs = append(addrs, a)
			}
		}
		slices.SortFunc(addrs, netip.Addr.Compare)
		for _, a := range addrs {
			out = append(out, SetEntry{Elem: a.String(), Expires: time.Unix(0, st.m[a])})
		}
		st.mu.RUnlock()
	case ns.prefix != nil:
		for _, s := range ns.prefix.strings() {
			out = append(out, SetEntry{Elem: s})
		}
	case ns.ports != nil:
		for _, r := range ns.ports.r {
			e := fmt.Sprint(r.lo)
			if r.hi != r.lo {
				e = fmt.Sprintf("%d-%d", r.lo, r.hi)
			}
			out = append(out, SetEntry{Elem: e})
		}
	case ns.domains != nil:
		for _, d := range ns.domains.list {
			out = append(out, SetEntry{Elem: d})
		}
	}
	return out, nil
}

// carryDynamic hands old's dynamic set contents to p's sets of the same
// name, updating their capacity to p's configuration.
func (p *Policy) carryDynamic(old *Policy) {
	for name, ns := range p.sets {
		if ns.dyn == nil {
			continue
		}
		o, ok := old.sets[name]
		if !ok || o.dyn == nil || o.dyn.state.typ != ns.dyn.state.typ {
			continue
		}
		st := o.dyn.state
		st.mu.Lock()
		st.max = ns.dyn.state.max
		st.mu.Unlock()
		ns.dyn.state = st
	}
}
