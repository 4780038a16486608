package control

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tungate/tungate/conntrack"
	"github.com/tungate/tungate/policy"
)

type fakeBackend struct {
	t      *conntrack.Table
	p      *policy.Policy
	reload func() error
}

func (b *fakeBackend) Conntrack() *conntrack.Table { return b.t }
func (b *fakeBackend) Policy() *policy.Policy      { return b.p }
func (b *fakeBackend) Reload() error               { return b.reload() }

func testPolicy(t *testing.T) *policy.Policy {
	t.Helper()
	p, err := policy.Compile(policy.Config{
		Defaults: policy.Defaults{Policy: "drop"},
		Rules: []policy.RuleConfig{
			{Name: "ctl-allow-web", Proto: policy.List{"tcp"}, DstPort: policy.List{int64(80)}, Action: "allow"},
			{Name: "ctl-allow-dns", Proto: policy.List{"udp"}, DstPort: policy.List{int64(53)}, Action: "allow"},
		},
	})
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return p
}

func mkKey(proto uint8, src, dst netip.AddrPort) conntrack.Key {
	k := conntrack.Key{Proto: proto, SrcPort: src.Port(), DstPort: dst.Port(), Family: 6}
	if src.Addr().Is4() {
		k.Family = 4
		s, d := src.Addr().As4(), dst.Addr().As4()
		copy(k.Src[:], s[:])
		copy(k.Dst[:], d[:])
	} else {
		k.Src, k.Dst = src.Addr().As16(), dst.Addr().As16()
	}
	return k
}

func reverse(k conntrack.Key) conntrack.Key {
	k.Src, k.Dst = k.Dst, k.Src
	k.SrcPort, k.DstPort = k.DstPort, k.SrcPort
	return k
}

var (
	webClient = netip.MustParseAddrPort("198.18.1.2:41234")
	webServer = netip.MustParseAddrPort("198.18.2.2:80")
	dnsClient = netip.MustParseAddrPort("[2001:2:0:1::2]:5353")
	dnsServer = netip.MustParseAddrPort("[2001:2:0:2::2]:53")
)

// fillTable opens an established TCP flow (handshake plus data both ways)
// and an unreplied UDP flow.
func fillTable(t *testing.T, tab *conntrack.Table, p *policy.Policy) {
	t.Helper()
	ids := map[string]uint32{}
	for _, c := range p.Counters() {
		ids[c.Name] = c.ID
	}
	web := mkKey(6, webClient, webServer)
	syn := &conntrack.Packet{Key: web, TCPFlags: 0x02, Len: 60}
	tab.Track(syn)
	if err := tab.Commit(syn, conntrack.Verdict{Action: uint8(policy.ActionAllow), Rule: ids["ctl-allow-web"]}); err != nil {
		t.Fatal(err)
	}
	for _, pk := range []conntrack.Packet{
		{Key: reverse(web), TCPFlags: 0x12, Len: 60},
		{Key: web, TCPFlags: 0x10, Len: 52},
		{Key: web, TCPFlags: 0x18, Len: 152, PayloadLen: 100},
		{Key: reverse(web), TCPFlags: 0x18, Len: 152, PayloadLen: 100},
	} {
		if r := tab.Track(&pk); !r.Found || r.State != conntrack.StateEstablished {
			t.Fatalf("track %+v: %+v", pk, r)
		}
	}
	dns := &conntrack.Packet{Key: mkKey(17, dnsClient, dnsServer), Len: 80}
	tab.Track(dns)
	if err := tab.Commit(dns, conntrack.Verdict{Action: uint8(policy.ActionAllow), Rule: ids["ctl-allow-dns"]}); err != nil {
		t.Fatal(err)
	}
}

func newOpsServer(t *testing.T) (*fakeBackend, Client) {
	t.Helper()
	var cfg conntrack.Config
	cfg.Defaults()
	b := &fakeBackend{t: conntrack.New(cfg, conntrack.Options{}), p: testPolicy(t)}
	_, path, _, _ := serve(t, Ops(b), Options{})
	return b, Client{Path: path}
}

func listFlows(t *testing.T, c Client) map[string]Flow {
	t.Helper()
	got := map[string]Flow{}
	err := c.Stream(context.Background(), OpConntrackList, nil, func(dec *json.Decoder) error {
		var f Flow
		if err := dec.Decode(&f); err != nil {
			return err
		}
		got[f.Proto] = f
		return nil
	})
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	return got
}

func TestOpsList(t *testing.T) {
	b, c := newOpsServer(t)
	fillTable(t, b.t, b.p)

	flows := listFlows(t, c)
	if len(flows) != 2 {
		t.Fatalf("listed %d flows, want 2: %+v", len(flows), flows)
	}
	web := flows["tcp"]
	if web.State != "ESTABLISHED" || !web.Assured || !web.SeenReply || web.Rule != "ctl-allow-web" || web.Action != "allow" {
		t.Errorf("tcp flow: %+v", web)
	}
	if web.Orig.Src != webClient.Addr() || web.Orig.SrcPort != webClient.Port() ||
		web.Orig.Dst != webServer.Addr() || web.Orig.DstPort != webServer.Port() {
		t.Errorf("tcp orig tuple %+v, want %s -> %s", web.Orig, webClient, webServer)
	}
	if web.Reply.Src != webServer.Addr() || web.Reply.SrcPort != 80 || web.Reply.Dst != webClient.Addr() || web.Reply.DstPort != webClient.Port() {
		t.Errorf("tcp reply tuple %+v", web.Reply)
	}
	if web.Orig.Packets == 0 || web.Reply.Packets == 0 || web.Orig.Bytes < web.Orig.Packets || web.Reply.Bytes < 152 {
		t.Errorf("tcp counters orig %d/%d reply %d/%d", web.Orig.Packets, web.Orig.Bytes, web.Reply.Packets, web.Reply.Bytes)
	}
	if web.TimeoutMS <= 0 {
		t.Errorf("tcp timeout %dms", web.TimeoutMS)
	}
	dns := flows["udp"]
	if dns.Family != 6 || dns.SeenReply || dns.Assured || dns.State != "" || dns.Rule != "ctl-allow-dns" || dns.Orig.Dst != dnsServer.Addr() {
		t.Errorf("udp flow: %+v", dns)
	}

	// The wire form agrees with the table's own view.
	b.t.Range(func(fi conntrack.FlowInfo) bool {
		want := FlowFrom(fi, b.p)
		got := flows[want.Proto]
		got.TimeoutMS, want.TimeoutMS = 0, 0
		if !reflect.DeepEqual(got, want) {
			t.Errorf("listed %+v\ntable  %+v", got, want)
		}
		return true
	})

	// The text line carries both tuples, the flags and the rule.
	line := string(web.AppendText(nil))
	for _, want := range []string{
		"tcp      6 ", " ESTABLISHED src=198.18.1.2 dst=198.18.2.2 sport=41234 dport=80 packets=",
		" src=198.18.2.2 dst=198.18.1.2 sport=80 dport=41234 packets=", " [ASSURED] rule=ctl-allow-web",
	} {
		if !strings.Contains(line, want) {
			t.Errorf("line %q lacks %q", line, want)
		}
	}
	if strings.Contains(line, "UNREPLIED") {
		t.Errorf("replied flow marked unreplied: %q", line)
	}
	if l := string(dns.AppendText(nil)); !strings.Contains(l, "dport=53 packets=1 bytes=80 [UNREPLIED] src=2001:2:0:2::2") {
		t.Errorf("udp line %q", l)
	}
}

func TestOpsDeleteFlush(t *testing.T) {
	b, c := newOpsServer(t)
	fillTable(t, b.t, b.p)

	var re *RemoteError
	miss := DeleteArgs{Proto: "tcp", Src: "198.18.1.2:41235", Dst: webServer.String()}
	if err := c.Call(context.Background(), OpConntrackDelete, miss, nil); !errors.As(err, &re) || re.Msg != ErrNoFlow.Error() {
		t.Errorf("delete of an unknown flow: %v", err)
	}
	if err := c.Call(context.Background(), OpConntrackDelete, DeleteArgs{Proto: "tcp", Src: "nonsense", Dst: "x"}, nil); !errors.As(err, &re) {
		t.Errorf("delete with bad args: %v", err)
	}
	// Given in the reply direction.
	var res Flushed
	byReply := DeleteArgs{Proto: "tcp", Src: webServer.String(), Dst: webClient.String()}
	if err := c.Call(context.Background(), OpConntrackDelete, byReply, &res); err != nil || res.Deleted != 1 {
		t.Fatalf("delete by reply tuple: %v %+v", err, res)
	}
	if flows := listFlows(t, c); len(flows) != 1 || flows["udp"].Proto != "udp" {
		t.Errorf("after delete: %+v", flows)
	}
	if b.t.Len() != 1 {
		t.Errorf("table holds %d flows after delete, want 1", b.t.Len())
	}

	fillTable(t, b.t, b.p) // the TCP flow again; the UDP one exists already
	var st Stats
	if err := c.Call(context.Background(), OpConntrackStats, nil, &st); err != nil {
		t.Fatal(err)
	}
	if st.Flows != 2 || st.Insert != 3 || st.Removed != 1 {
		t.Errorf("stats %+v, want flows=2 insert=3 removed=1", st)
	}
	// The table's shape: its configured capacity, and the slots two
	// flows occupy (each in a fresh shard table of 15 slots).
	if st.MaxFlows != int64(b.t.Stats().MaxFlows) || st.MaxFlows <= 0 || st.Slots < 15 || st.Rebuilds < 1 {
		t.Errorf("stats shape: max_flows=%d slots=%d rebuilds=%d", st.MaxFlows, st.Slots, st.Rebuilds)
	}
	res = Flushed{}
	if err := c.Call(context.Background(), OpConntrackFlush, nil, &res); err != nil || res.Deleted != 2 {
		t.Fatalf("flush: %v %+v", err, res)
	}
	if b.t.Len() != 0 || len(listFlows(t, c)) != 0 {
		t.Errorf("flows left after flush: %d", b.t.Len())
	}
}

func TestOpsRulesReloadPing(t *testing.T) {
	b, c := newOpsServer(t)
	b.p.CountFlow(0)
	b.p.CountPacket(0, 1500)
	b.p.CountPacket(0, 40)
	b.p.CountFlow(-1)

	var rules []Rule
	if err := c.Call(context.Background(), OpRules, nil, &rules); err != nil {
		t.Fatal(err)
	}
	if len(rules) != 3 || rules[0].Name != "ctl-allow-web" || rules[1].Name != "ctl-allow-dns" || rules[2].Name != "default" {
		t.Fatalf("rules %+v", rules)
	}
	if r := rules[0]; r.Flows != 1 || r.Packets != 2 || r.Bytes != 1540 || r.LastHit == nil || r.ID == 0 {
		t.Errorf("web counters %+v", r)
	}
	if r := rules[1]; r.Flows != 0 || r.LastHit != nil {
		t.Errorf("unused rule %+v", r)
	}
	if r := rules[2]; r.Flows != 1 || r.ID != 0 {
		t.Errorf("default counters %+v", r)
	}
	if since := time.Since(*rules[0].LastHit); since < 0 || since > time.Hour {
		t.Errorf("last hit %v is not from this test", rules[0].LastHit)
	}

	calls := 0
	b.reload = func() error {
		calls++
		return errors.New("/etc/tungate.toml:12:5: dst_port 99999 out of range")
	}
	var re *RemoteError
	if err := c.Call(context.Background(), OpReload, nil, nil); !errors.As(err, &re) || re.Msg != "/etc/tungate.toml:12:5: dst_port 99999 out of range" {
		t.Errorf("refused reload: %v", err)
	}
	b.reload = func() error { calls++; return nil }
	if err := c.Call(context.Background(), OpReload, nil, nil); err != nil {
		t.Errorf("reload: %v", err)
	}
	if calls != 2 {
		t.Errorf("backend reloaded %d times, want 2", calls)
	}

	var pong Pong
	if err := c.Call(context.Background(), OpPing, nil, &pong); err != nil || pong.PID == 0 {
		t.Errorf("ping: %v %+v", err, pong)
	}
}

func TestFlowText(t *testing.T) {
	f := Flow{
		Proto: "tcp", ProtoNum: 6, Family: 4, State: "ESTABLISHED", TimeoutMS: 431999_700,
		Orig:    Tuple{Src: netip.MustParseAddr("198.18.1.2"), Dst: netip.MustParseAddr("198.18.2.2"), SrcPort: 41234, DstPort: 80, Packets: 12, Bytes: 1234},
		Reply:   Tuple{Src: netip.MustParseAddr("198.18.2.2"), Dst: netip.MustParseAddr("198.18.1.2"), SrcPort: 80, DstPort: 41234, Packets: 10, Bytes: 5678},
		Assured: true, SeenReply: true, Rule: "allow-web",
	}
	want := "tcp      6 431999 ESTABLISHED src=198.18.1.2 dst=198.18.2.2 sport=41234 dport=80 packets=12 bytes=1234 src=198.18.2.2 dst=198.18.1.2 sport=80 dport=41234 packets=10 bytes=5678 [ASSURED] rule=allow-web"
	if got := string(f.AppendText(nil)); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	icmp := Flow{
		Proto: "icmp", ProtoNum: 1, Family: 4, TimeoutMS: 29_000,
		Orig:  Tuple{Src: netip.MustParseAddr("198.18.1.2"), Dst: netip.MustParseAddr("198.18.2.2"), SrcPort: 77, Packets: 1, Bytes: 84},
		Reply: Tuple{Src: netip.MustParseAddr("198.18.2.2"), Dst: netip.MustParseAddr("198.18.1.2"), DstPort: 77},
		Rule:  "default",
	}
	want = "icmp     1 29 src=198.18.1.2 dst=198.18.2.2 id=77 packets=1 bytes=84 [UNREPLIED] src=198.18.2.2 dst=198.18.1.2 id=77 packets=0 bytes=0 rule=default"
	if got := string(icmp.AppendText(nil)); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	// JSON field names are part of the protocol.
	js, _ := json.Marshal(f)
	for _, k := range []string{`"proto":"tcp"`, `"proto_num":6`, `"state":"ESTABLISHED"`, `"timeout_ms":431999700`,
		`"orig":{"src":"198.18.1.2","dst":"198.18.2.2","sport":41234,"dport":80,"packets":12,"bytes":1234}`,
		`"assured":true`, `"seen_reply":true`, `"rule":"allow-web"`, `"rule_id":0`} {
		if !strings.Contains(string(js), k) {
			t.Errorf("JSON %s lacks %s", js, k)
		}
	}
	// -v adds each TCP direction's window state; the plain line has none.
	f.Orig.Window = &Window{End: 1001235, MaxEnd: 1066395, MaxWin: 65160, WScale: 7}
	f.Reply.Window = &Window{End: 5679, MaxEnd: 70000, MaxWin: 64240, Liberal: true}
	want = "tcp      6 431999 ESTABLISHED src=198.18.1.2 dst=198.18.2.2 sport=41234 dport=80 packets=12 bytes=1234 win=[1001235:1066395] maxwin=65160 wscale=7 src=198.18.2.2 dst=198.18.1.2 sport=80 dport=41234 packets=10 bytes=5678 win=[5679:70000] maxwin=64240 wscale=0 liberal [ASSURED] rule=allow-web"
	if got := string(f.AppendTextVerbose(nil)); got != want {
		t.Errorf("verbose:\ngot  %s\nwant %s", got, want)
	}
	if got := string(f.AppendText(nil)); strings.Contains(got, "win=") {
		t.Errorf("plain line shows windows: %s", got)
	}
	js, _ = json.Marshal(f)
	if k := `"window":{"end":1001235,"max_end":1066395,"max_win":65160,"wscale":7}`; !strings.Contains(string(js), k) {
		t.Errorf("JSON %s lacks %s", js, k)
	}
}

func TestDeleteArgsKey(t *testing.T) {
	for _, tc := range []struct {
		a   DeleteArgs
		err string
		key conntrack.Key
	}{
		{a: DeleteArgs{"tcp", "198.18.1.2:41234", "198.18.2.2:80"}, key: mkKey(6, webClient, webServer)},
		{a: DeleteArgs{"UDP", "[2001:2:0:1::2]:5353", "[2001:2:0:2::2]:53"}, key: mkKey(17, dnsClient, dnsServer)},
		{a: DeleteArgs{"tcp", "[::ffff:198.18.1.2]:41234", "198.18.2.2:80"}, key: mkKey(6, webClient, webServer)},
		{a: DeleteArgs{"icmp", "198.18.1.2:77", "198.18.2.2"}, key: mkKey(1, netip.MustParseAddrPort("198.18.1.2:77"), netip.MustParseAddrPort("198.18.2.2:0"))},
		{a: DeleteArgs{"icmpv6", "[2001:2::1]:9", "2001:2::2"}, key: mkKey(58, netip.MustParseAddrPort("[2001:2::1]:9"), netip.MustParseAddrPort("[2001:2::2]:0"))},
		{a: DeleteArgs{"sctp", "198.18.1.2:1", "198.18.2.2:2"}, err: "unknown protocol"},
		{a: DeleteArgs{"tcp", "198.18.1.2", "198.18.2.2:80"}, err: "not IP:PORT"},
		{a: DeleteArgs{"tcp", "198.18.1.2:1", ""}, err: "dst: missing"},
		{a: DeleteArgs{"tcp", "198.18.1.2:1", "[2001:2::2]:80"}, err: "different address families"},
		{a: DeleteArgs{"icmp", "[2001:2::1]:9", "2001:2::2"}, err: "does not go with IPv6"},
		{a: DeleteArgs{"icmp", "198.18.1.2:77", "198.18.2.2:5"}, err: "no destination port"},
		{a: DeleteArgs{"tcp", "[fe80::1%eth0]:1", "[fe80::2]:2"}, err: "zones"},
	} {
		k, err := tc.a.Key()
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%+v: %v, want error containing %q", tc.a, err, tc.err)
		case tc.err == "" && err != nil:
			t.Errorf("%+v: %v", tc.a, err)
		case tc.err == "" && k != tc.key:
			t.Errorf("%+v: key %+v, want %+v", tc.a, k, tc.key)
		}
	}
}

func TestListenErrors(t *testing.T) {
	if _, err := Listen("", Options{}); err == nil {
		t.Error("Listen with an empty path succeeded")
	}
	if _, err := Listen(filepath.Join(t.TempDir(), "missing", "ctl.sock"), Options{}); err == nil {
		t.Error("Listen in a missing directory succeeded")
	}
}
