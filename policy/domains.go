package policy

import "strings"

// domainSet matches names by suffix: "example.org" matches itself and
// every subdomain, "*.example.org" only the subdomains.
type domainSet struct {
	m    map[string]uint8 // domain -> domExact|domSub
	list []string         // as configured (normalised), for listing
}

const (
	domExact = 1 << iota // the name itself
	domSub               // its subdomains
)

func newDomainSet(elems []string) *domainSet {
	s := &domainSet{m: make(map[string]uint8, len(elems)), list: elems}
	for _, d := range elems {
		if body, ok := strings.CutPrefix(d, "*."); ok {
			s.m[body] |= domSub
		} else {
			s.m[d] |= domExact | domSub
		}
	}
	return s
}

// match reports whether name (any case, trailing dot allowed) is in the
// set. It allocates nothing: a name with upper case letters is lowered
// into a stack buffer.
func (s *domainSet) match(name string) bool {
	name = strings.TrimSuffix(name, ".")
	if len(name) == 0 || len(name) > 253 {
		return false
	}
	var buf [253]byte
	for i := 0; i < len(name); i++ {
		if c := name[i]; c >= 'A' && c <= 'Z' {
			n := copy(buf[:], name)
			for j := i; j < n; j++ {
				if c := buf[j]; c >= 'A' && c <= 'Z' {
					buf[j] = c + 'a' - 'A'
				}
			}
			return s.matchLower(buf[:n])
		}
	}
	return s.matchLowerString(name)
}

func (s *domainSet) matchLower(b []byte) bool {
	if s.m[string(b)]&domExact != 0 {
		return true
	}
	for i := 0; i < len(b); i++ {
		if b[i] == '.' && s.m[string(b[i+1:])]&domSub != 0 {
			return true
		}
	}
	return false
}

func (s *domainSet) matchLowerString(n string) bool {
	if s.m[n]&domExact != 0 {
		return true
	}
	for i := 0; i < len(n); i++ {
		if n[i] == '.' && s.m[n[i+1:]]&domSub != 0 {
			return true
		}
	}
	return false
}

// DomainSetMatch reports whether name is in domain set set, with suffix
// semantics: an element matches itself and its subdomains ("*.x" only
// the subdomains). Case and a trailing dot are ignored. It returns false
// for an unknown set or one of another type, and allocates nothing.
func (p *Policy) DomainSetMatch(set, name string) bool {
	ns, ok := p.sets[set]
	if !ok || ns.domains == nil {
		return false
	}
	return ns.domains.match(name)
}

// DomainMatcher returns the compiled matcher of domain set set, for
// callers that resolve the set once (the L7 rules) and match many names.
func (p *Policy) DomainMatcher(set string) (func(name string) bool, bool) {
	ns, ok := p.sets[set]
	if !ok || ns.domains == nil {
		return nil, false
	}
	return ns.domains.match, true
}
