package policy

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"

	"github.com/tungate/tungate/internal/cfgerr"
)

// strMatcher is a compiled StringMatch. For name fields (tls.sni,
// http.host, dns.qname) the configured values are normalized like the
// flow's values (lower case, no trailing dot) and suffixes are
// label-aware, so suffixes share one domainSet with the referenced
// sets' semantics; for other fields values compare as written.
type strMatcher struct {
	name    bool
	absent  bool
	exact   map[string]struct{}
	suffix  *domainSet   // name fields: inline suffixes
	sets    []*domainSet // name fields: @set references
	suffixB []string     // other fields: plain suffixes
	prefix  []string
	keyword []string
	regex   []*regexp.Regexp
}

// match reports whether the field value v matches; present is false when
// the field could not be read (then only absent = true matches). v must
// already be normalized for name fields. It allocates nothing.
func (m *strMatcher) match(v []byte, present bool) bool {
	if !present {
		return m.absent
	}
	if _, ok := m.exact[string(v)]; ok {
		return true
	}
	if m.suffix != nil && len(v) > 0 && m.suffix.matchLower(v) {
		return true
	}
	for _, s := range m.sets {
		if len(v) > 0 && len(v) <= 253 && s.matchLower(v) {
			return true
		}
	}
	for _, s := range m.suffixB {
		if bytes.HasSuffix(v, []byte(s)) {
			return true
		}
	}
	for _, s := range m.prefix {
		if bytes.HasPrefix(v, []byte(s)) {
			return true
		}
	}
	for _, s := range m.keyword {
		if bytes.Contains(v, []byte(s)) {
			return true
		}
	}
	for _, re := range m.regex {
		if re.Match(v) {
			return true
		}
	}
	return false
}

// normName lowercases a configured name and drops one trailing dot.
func normName(s string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".")
}

// compileStrMatch compiles the condition at key (e.g. {"rule","2","tls",
// "sni"}); name selects the name-field semantics.
func (p *Policy) compileStrMatch(sm *StringMatch, name bool, key []string, errs *cfgerr.List) *strMatcher {
	m := &strMatcher{name: name, absent: sm.Absent}
	n := 0
	str := func(list string, j int, e any) (string, bool) {
		s, ok := e.(string)
		if !ok {
			errs.Addf(fmt.Sprintf("invalid value of type %s (want a string)", typeName(e)), key, list, j)
			return "", false
		}
		if s == "" {
			errs.Addf("empty string matches nothing; remove it", key, list, j)
			return "", false
		}
		return s, true
	}
	setRef := func(list string, j int, s string) bool {
		ref, ok := strings.CutPrefix(s, "@")
		if !ok {
			return false
		}
		if !name {
			errs.Addf("domain sets can only be used with tls.sni, http.host and dns.qname", key, list, j)
			return true
		}
		if ns := p.setRef(ref, "domain", errs, key, list, j); ns != nil {
			m.sets = append(m.sets, ns.domains)
		}
		return true
	}
	var suffixes []string
	for j, e := range sm.Exact {
		s, ok := str("exact", j, e)
		if !ok || setRef("exact", j, s) {
			n++
			continue
		}
		if name {
			s = normName(s)
		}
		if m.exact == nil {
			m.exact = make(map[string]struct{})
		}
		m.exact[s] = struct{}{}
		n++
	}
	for j, e := range sm.Suffix {
		s, ok := str("suffix", j, e)
		if !ok || setRef("suffix", j, s) {
			n++
			continue
		}
		n++
		if !name {
			m.suffixB = append(m.suffixB, s)
			continue
		}
		d := strings.TrimPrefix(normName(s), ".")
		if _, err := parseDomainElem(d); err != nil {
			errs.Addf(fmt.Sprintf("invalid domain suffix %q", s), key, "suffix", j)
			continue
		}
		suffixes = append(suffixes, d)
	}
	if len(suffixes) > 0 {
		m.suffix = newDomainSet(suffixes)
	}
	for j, e := range sm.Prefix {
		if s, ok := str("prefix", j, e); ok {
			if name {
				s = strings.ToLower(s)
			}
			m.prefix = append(m.prefix, s)
		}
		n++
	}
	for j, e := range sm.Keyword {
		if s, ok := str("keyword", j, e); ok {
			if name {
				s = strings.ToLower(s)
			}
			m.keyword = append(m.keyword, s)
		}
		n++
	}
	for j, e := range sm.Regex {
		n++
		s, ok := str("regex", j, e)
		if !ok {
			continue
		}
		re, err := regexp.Compile(s)
		if err != nil {
			errs.Addf(fmt.Sprintf("invalid regex %q: %v", s, regexErr(err)), key, "regex", j)
			continue
		}
		m.regex = append(m.regex, re)
	}
	if n == 0 && !sm.Absent {
		errs.Addf("needs at least one of exact, suffix, prefix, keyword, regex or absent = true", key)
	}
	return m
}

// regexErr drops the "error parsing regexp: " prefix the caller's
// message already implies.
func regexErr(err error) string {
	return strings.TrimPrefix(err.Error(), "error parsing regexp: ")
}
