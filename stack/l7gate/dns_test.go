package l7gate

import (
	"net/netip"
	"testing"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/tungate/tungate/conntrack"
	"github.com/tungate/tungate/policy"
	"github.com/tungate/tungate/stack/decisionlog"
	"github.com/tungate/tungate/stack/packet"
	"github.com/tungate/tungate/stack/verdict"
)

// dnsSetup commits one UDP flow to port 53 under a policy pending on
// dns.qname and returns its query decider.
func dnsSetup(t *testing.T) *dnsFlow {
	t.Helper()
	pol, err := policy.Compile(policy.Config{
		Defaults: policy.Defaults{Policy: "drop"},
		Rules: []policy.RuleConfig{
			{Name: "nx-blocked", Proto: policy.List{"udp"}, DstPort: policy.List{int64(53)}, DNS: &policy.DNSMatch{QName: &policy.StringMatch{Suffix: []any{"blocked.example"}}}, Action: "reject", RejectWith: "dns-nxdomain"},
			{Name: "drop-dropped", Proto: policy.List{"udp"}, DstPort: policy.List{int64(53)}, DNS: &policy.DNSMatch{QName: &policy.StringMatch{Exact: []any{"dropped.example"}}}, Action: "drop"},
			{Name: "allow-dns", Proto: policy.List{"udp"}, DstPort: policy.List{int64(53)}, Action: "allow"},
		},
		Log: policy.LogConfig{Decisions: "drops"},
	})
	if err != nil {
		t.Fatal(err)
	}
	flows := verdict.NewFlows()
	ct := conntrack.New(conntrack.Config{}, conntrack.Options{OnDestroy: flows.Forget})
	a := verdict.New(verdict.Options{Conntrack: ct, Flows: flows, Decisions: decisionlog.New(nil, nil)})
	a.SetPolicy(pol)
	key := conntrack.KeyFrom(packet.ProtoUDP, netip.MustParseAddrPort("198.18.1.10:40000"), netip.MustParseAddrPort("198.18.2.1:53"))
	f := policy.Flow{Proto: key.Proto, Src: key.SrcAddr(), Dst: key.DstAddr(), SrcPort: key.SrcPort, DstPort: key.DstPort}
	v := pol.Decide(&f)
	if !v.Pending {
		t.Fatalf("verdict %+v, want pending on dns.qname", v)
	}
	pkt := conntrack.Packet{Key: key, Len: 60}
	if ct.Track(&pkt).State != conntrack.StateNew {
		t.Fatal("first datagram is not new")
	}
	if out := a.Apply(&verdict.Decision{Stage: verdict.StageNew, Policy: pol, Verdict: v, Key: key, Packet: &pkt}); out != verdict.Pass {
		t.Fatalf("first datagram: %v, want pass", out)
	}
	armed, ok := flows.Get(key).DNSVerdict()
	if !ok {
		t.Fatal("no DNS verdict kept for the flow")
	}
	return New(a, nil, 0).newDNSFlow(&f, key, armed)
}

func dnsQuery(t testing.TB, name string) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 7, RecursionDesired: true})
	if err := b.StartQuestions(); err != nil {
		t.Fatal(err)
	}
	if err := b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}); err != nil {
		t.Fatal(err)
	}
	msg, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func TestDNSDecide(t *testing.T) {
	d := dnsSetup(t)
	for _, tc := range []struct {
		name string
		msg  []byte
		want dnsAct
	}{
		{"allowed", dnsQuery(t, "www.allowed.example."), dnsForward},
		{"nxdomain", dnsQuery(t, "www.blocked.example."), dnsAnswer},
		{"dropped", dnsQuery(t, "dropped.example."), dnsDrop},
		{"not a query", []byte{1, 2, 3}, dnsForward}, // an absent name: the allow rule takes it
	} {
		if got, _ := d.decide(tc.msg); got != tc.want {
			t.Errorf("%s: got %d; want %d", tc.name, got, tc.want)
		}
	}
	info, ok := d.g.apply.FlowL7(d.key)
	if !ok || info.DNSQName != "dropped.example" || info.Rule != "drop-dropped" {
		t.Errorf("recorded %+v, %v; want the latest refused query and its rule", info, ok)
	}
}

func TestDNSDecideAllocs(t *testing.T) {
	d := dnsSetup(t)
	q := dnsQuery(t, "www.allowed.example.")
	if act, _ := d.decide(q); act != dnsForward {
		t.Fatalf("allowed query: act %d", act)
	}
	if n := testing.AllocsPerRun(100, func() { d.decide(q) }); n != 0 {
		t.Errorf("an allowed query allocates %.1f times", n)
	}
}
