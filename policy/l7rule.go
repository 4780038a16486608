package policy

import (
	"github.com/tungate/tungate/internal/cfgerr"
	"github.com/tungate/tungate/policy/l7"
)

// L7Proto is the application protocol an extractor recognised.
type L7Proto uint8

const (
	L7Unknown L7Proto = iota // nothing recognised (or nothing sent): every field is absent
	L7TLS                    // a TLS ClientHello: SNI (absent when it has no server_name)
	L7HTTP                   // an HTTP/1.x request head: Host, Method, Path
	L7DNS                    // a DNS query: QName
)

func (p L7Proto) String() string {
	switch p {
	case L7TLS:
		return "tls"
	case L7HTTP:
		return "http"
	case L7DNS:
		return "dns"
	}
	return "unknown"
}

// L7Fields are the fields of one flow (or one request or query) that L7
// rules read. A field is present when Proto is its protocol and, for SNI
// and Host, it is not empty. Names (SNI, Host, QName) are normalized in
// place by Resume and DecideDNS (ASCII lower case, one trailing dot
// removed; a Host's port is removed by l7.HTTPState already). The slices
// belong to the caller.
type L7Fields struct {
	Proto L7Proto
	// Incomplete: client bytes arrived but the budget (max_bytes or
	// timeout) ran out before a field was complete. Proto is then
	// L7Unknown.
	Incomplete bool

	SNI                []byte
	Host, Method, Path []byte
	QName              []byte
}

func (f *L7Fields) normalize() {
	f.SNI = l7.NormalizeName(f.SNI)
	f.Host = l7.NormalizeName(f.Host)
	f.QName = l7.NormalizeName(f.QName)
}

// value returns field k of f and whether it is present.
func (f *L7Fields) value(k L7Field) ([]byte, bool) {
	if f == nil {
		return nil, false
	}
	switch k {
	case FieldSNI:
		return f.SNI, f.Proto == L7TLS && len(f.SNI) > 0
	case FieldHTTPHost:
		return f.Host, f.Proto == L7HTTP && len(f.Host) > 0
	case FieldHTTPMethod:
		return f.Method, f.Proto == L7HTTP
	case FieldHTTPPath:
		return f.Path, f.Proto == L7HTTP
	case FieldDNSQName:
		return f.QName, f.Proto == L7DNS
	}
	return nil, false
}

// l7Cond is a rule's compiled L7 conditions; they must all hold.
type l7Cond struct {
	need   L7Need
	fields [4]L7Field     // the fields checked, in this order
	ms     [4]*strMatcher // their matchers
	n      int
}

func (c *l7Cond) add(k L7Field, m *strMatcher) {
	c.fields[c.n], c.ms[c.n] = k, m
	c.n++
	c.need |= 1 << k
}

// match reports whether every condition holds on f, and the field that
// decided: the first one of the rule (all of them held).
func (c *l7Cond) match(f *L7Fields) (bool, L7Field) {
	for i := range c.n {
		v, ok := f.value(c.fields[i])
		if !c.ms[i].match(v, ok) {
			return false, c.fields[i]
		}
	}
	return true, c.fields[0]
}

// dns reports a dns.qname rule, decided per query.
func (c *l7Cond) dns() bool { return c.need&NeedDNS != 0 }

// compileL7 compiles the tls/http/dns keys of rule rc.
func (p *Policy) compileL7(rc *RuleConfig, r *rule, protoOK bool, key []string, errs *cfgerr.List) *l7Cond {
	if rc.TLS == nil && rc.HTTP == nil && rc.DNS == nil {
		return nil
	}
	c := &l7Cond{}
	sub := func(k ...string) []string { return append(append([]string(nil), key...), k...) }
	first := ""
	if t := rc.TLS; t != nil {
		first = "tls"
		if t.SNI == nil {
			errs.Addf("tls needs sni", key, "tls")
		} else {
			c.add(FieldSNI, p.compileStrMatch(t.SNI, true, sub("tls", "sni"), errs))
		}
	}
	if h := rc.HTTP; h != nil {
		if first != "" {
			errs.Addf("http.* cannot be combined with tls.* (a flow carries one of them)", key, "http")
		}
		first = "http"
		if h.Host == nil && h.Method == nil && h.Path == nil {
			errs.Addf("http needs host, method or path", key, "http")
		}
		if h.Host != nil {
			c.add(FieldHTTPHost, p.compileStrMatch(h.Host, true, sub("http", "host"), errs))
		}
		if h.Method != nil {
			c.add(FieldHTTPMethod, p.compileStrMatch(h.Method, false, sub("http", "method"), errs))
		}
		if h.Path != nil {
			c.add(FieldHTTPPath, p.compileStrMatch(h.Path, false, sub("http", "path"), errs))
		}
	}
	if d := rc.DNS; d != nil {
		if first != "" {
			errs.Addf("dns.qname cannot be combined with "+first+".* (queries are decided one by one)", key, "dns")
		}
		if d.QName == nil {
			errs.Addf("dns needs qname", key, "dns")
		} else {
			c.add(FieldDNSQName, p.compileStrMatch(d.QName, true, sub("dns", "qname"), errs))
		}
		first = "dns"
	}
	if c.n == 0 {
		return nil
	}
	if protoOK {
		switch {
		case first == "dns" && (r.protos == protoAll || r.protos&^protoBitsPorts != 0):
			errs.Addf(`dns.qname needs proto limited to "udp" and/or "tcp"`, key, "proto")
		case first != "dns" && r.protos != protoBitTCP:
			errs.Addf(first+`.* needs proto = "tcp"`, key, "proto")
		}
	}
	for _, k := range []struct {
		name string
		set  bool
	}{{"payload", len(rc.Payload) > 0}, {"limit", rc.Limit != nil}, {"add_to", rc.AddTo != nil}} {
		if k.set {
			errs.Addf(k.name+" cannot be combined with tls/http/dns keys", key, k.name)
		}
	}
	return c
}
