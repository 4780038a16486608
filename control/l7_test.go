package control

import (
	"strings"
	"testing"

	"github.com/tungate/tungate/conntrack"
)

// l7Backend records L7 fields for the DNS flow of fillTable.
type l7Backend struct {
	*fakeBackend
	dns conntrack.Key
}

func (b *l7Backend) FlowL7(k conntrack.Key) (L7, bool) {
	if k == b.dns {
		return L7{DNSQName: "x.blocked.example"}, true
	}
	return L7{}, false
}

func TestOpsListL7(t *testing.T) {
	var cfg conntrack.Config
	cfg.Defaults()
	fb := &fakeBackend{t: conntrack.New(cfg, conntrack.Options{}), p: testPolicy(t)}
	fillTable(t, fb.t, fb.p)
	b := &l7Backend{fakeBackend: fb, dns: mkKey(17, dnsClient, dnsServer)}
	_, path, _, _ := serve(t, Ops(b), Options{})
	flows := listFlows(t, Client{Path: path})
	if f := flows["udp"]; f.DNSQName != "x.blocked.example" || f.SNI != "" || f.HTTPHost != "" {
		t.Errorf("udp flow L7 fields: %+v", f)
	}
	if f := flows["tcp"]; f.DNSQName != "" || f.SNI != "" || f.HTTPHost != "" {
		t.Errorf("tcp flow has L7 fields it never got: %+v", f)
	}
	udp := flows["udp"]
	line := string(udp.AppendText(nil))
	if !strings.HasSuffix(line, ` dns_qname="x.blocked.example" rule=ctl-allow-dns`) {
		t.Errorf("text line %q lacks the query name before the rule", line)
	}
	tcp := flows["tcp"]
	if line := string(tcp.AppendText(nil)); strings.Contains(line, "sni=") || strings.Contains(line, "dns_qname=") {
		t.Errorf("text line %q shows fields the flow does not have", line)
	}
}
