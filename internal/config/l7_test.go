package config

import (
	"testing"

	"github.com/tungate/tungate/policy"
)

// TestL7Keys loads the L7 rule keys as written in a file: TOML dotted keys
// (tls.sni = {...}), a [rule.http] subtable style, payload entries with the
// new fields, and [inspect] on_incomplete.
func TestL7Keys(t *testing.T) {
	src := base + `
[inspect]
on_incomplete = "drop"

[sets.bad]
type = "domain"
elements = ["bad.example"]

[[rule]]
name     = "block-sni"
proto    = "tcp"
dst_port = 443
tls.sni  = { suffix = ["Blocked.Example", "@bad"] }
action   = "reject"

[[rule]]
name        = "no-admin"
proto       = "tcp"
http.host   = { exact = "app.example" }
http.path   = { prefix = ["/admin"], regex = ["^/debug/"] }
action      = "reject"
reject_with = "http-403"

[[rule]]
name      = "dns"
proto     = ["udp", "tcp"]
dst_port  = 53
dns.qname = { suffix = "@bad" }
action    = "reject"

[[rule]]
name    = "sig"
proto   = "tcp"
payload = [{ hex = "de ad be ef", offset = 4, depth = 16 }, { regex = "evil\\d+", distance = 0, within = 32 }]
action  = "drop"
`
	f, err := Parse("t.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	r := f.Policy.Rules
	if r[0].TLS == nil || r[0].TLS.SNI == nil || len(r[0].TLS.SNI.Suffix) != 2 {
		t.Errorf("tls.sni: %+v", r[0].TLS)
	}
	if r[1].HTTP == nil || r[1].HTTP.Host == nil || r[1].HTTP.Path == nil || len(r[1].HTTP.Path.Regex) != 1 || r[1].RejectWith != "http-403" {
		t.Errorf("http: %+v", r[1].HTTP)
	}
	if r[2].DNS == nil || r[2].DNS.QName == nil {
		t.Errorf("dns: %+v", r[2].DNS)
	}
	pl := r[3].Payload
	if len(pl) != 2 || pl[0].Hex != "de ad be ef" || pl[0].Offset != 4 || pl[0].Depth != 16 || pl[1].Distance == nil || *pl[1].Within != 32 {
		t.Errorf("payload: %+v", pl)
	}
	if f.Compiled.Inspect().OnIncomplete != "drop" {
		t.Errorf("on_incomplete: %q", f.Compiled.Inspect().OnIncomplete)
	}
	fl := &policy.Flow{Proto: 6, DstPort: 443}
	if v := f.Compiled.Decide(fl); !v.Pending || v.Need != policy.NeedSNI|policy.NeedHTTPHost|policy.NeedHTTPPath {
		t.Errorf("Decide = %v need %b", v, v.Need)
	}
}

func TestL7KeyErrors(t *testing.T) {
	checkErrors(t, base+`
[[rule]]
name    = "x"
proto   = "tcp"
tls.sni = { sufix = ["a.example"] }
action  = "drop"

[[rule]]
name      = "y"
proto     = "tcp"
http.host = { suffix = ["bad..example"] }
action    = "drop"
`, []want{
		{"{ sufix", 0, "tls.sni: needs at least one of exact, suffix"},
		{"sufix", 0, `unknown key "tls.sni.sufix" in [[rule]] #1 "x"`},
		{`"bad..example"`, 0, `invalid domain suffix`},
	})
}
