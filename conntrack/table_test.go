package conntrack

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

func mustCommit(t *testing.T, tab *Table, p *Packet) {
	t.Helper()
	if r := tab.Track(p); r.State != StateNew {
		t.Fatalf("Track %+v: %+v, want new", p.Key, r)
	}
	if err := tab.Commit(p, Verdict{Action: 1}); err != nil {
		t.Fatalf("Commit %+v: %v", p.Key, err)
	}
}

func TestUDP(t *testing.T) {
	tab, clk := newTestTable(t, nil)
	k := udpKey("198.18.0.1", "198.18.1.1", 5353, 53)
	rk := replyKey(&k)
	mustCommit(t, tab, &Packet{Key: k, Len: 60})

	clk.Advance(time.Second)
	r := tab.Track(&Packet{Key: rk, Len: 100})
	if !r.Found || r.Dir != DirReply || r.State != StateEstablished {
		t.Fatalf("reply: %+v", r)
	}
	e, _, _ := flow(tab, k)
	if e.flags&eSeenReply == 0 || e.flags&eAssured != 0 {
		t.Fatalf("after first reply: flags %b, want seen reply, not assured", e.flags)
	}
	// Replied and still active after 2 s: a stream, assured, 120 s.
	clk.Advance(2 * time.Second)
	if r := tab.Track(&Packet{Key: k, Len: 60}); r.Dir != DirOriginal || !r.Found {
		t.Fatalf("original: %+v", r)
	}
	e, _, _ = flow(tab, k)
	if e.flags&eAssured == 0 {
		t.Fatal("not assured after a reply and 3 s of activity")
	}
	if e.packets != [2]uint64{2, 1} || e.bytes != [2]uint64{120, 100} {
		t.Fatalf("counters %v %v", e.packets, e.bytes)
	}
	clk.Advance(119 * time.Second)
	if r := tab.Track(&Packet{Key: rk}); !r.Found {
		t.Fatal("stream expired before 120 s")
	}
	clk.Advance(120 * time.Second)
	if r := tab.Track(&Packet{Key: rk}); r.Found || r.State != StateNew {
		t.Fatalf("after 120 s idle: %+v", r)
	}

	// Unreplied: 30 s, never assured.
	k2 := udpKey("198.18.0.2", "198.18.1.1", 5353, 53)
	mustCommit(t, tab, &Packet{Key: k2})
	clk.Advance(29 * time.Second)
	if r := tab.Track(&Packet{Key: k2}); !r.Found {
		t.Fatal("unreplied expired before 30 s")
	}
	clk.Advance(30 * time.Second)
	if r := tab.Track(&Packet{Key: k2}); r.Found {
		t.Fatal("unreplied survived 30 s idle")
	}
	checkInvariants(t, tab)
}

func TestICMPEcho(t *testing.T) {
	for _, fam := range []struct{ a, b string }{
		{"198.18.0.1", "198.18.1.1"},
		{"2001:2::1", "2001:2:0:1::1"},
	} {
		t.Run(fam.a, func(t *testing.T) {
			tab, _ := newTestTable(t, nil)
			req := echoKey(fam.a, fam.b, 77)
			rep := replyKey(&req)
			if rep.SrcPort != 77 || rep.DstPort != 0 || rep.Src != req.Dst {
				t.Fatalf("reply key %+v", rep)
			}
			reqT, repT := echoType(req.Proto, DirOriginal), echoType(req.Proto, DirReply)

			if r := tab.Track(&Packet{Key: rep, ICMPType: repT}); r.State != StateInvalid {
				t.Fatalf("unsolicited echo reply: %+v", r)
			}
			mustCommit(t, tab, &Packet{Key: req, ICMPType: reqT})
			r := tab.Track(&Packet{Key: rep, ICMPType: repT})
			if !r.Found || r.Dir != DirReply || r.State != StateEstablished {
				t.Fatalf("echo reply: %+v", r)
			}
			if r := tab.Track(&Packet{Key: rep, ICMPType: reqT}); r.State != StateInvalid {
				t.Fatalf("request in reply direction: %+v", r)
			}
			other := echoKey(fam.b, fam.a, 78)
			if r := tab.Track(&Packet{Key: other, ICMPType: repT}); r.State != StateInvalid || r.Found {
				t.Fatalf("reply with another id: %+v", r)
			}
			e, _, _ := flow(tab, req)
			if e.flags&eSeenReply == 0 || e.flags&eAssured != 0 || e.packets != [2]uint64{1, 1} {
				t.Fatalf("entry %+v", e)
			}
			checkInvariants(t, tab)
		})
	}
}

func TestICMPErrorRelated(t *testing.T) {
	const client, server, router, other = "198.18.0.1", "198.18.1.1", "198.18.2.1", "198.18.0.9"
	tab, _ := newTestTable(t, nil)
	k := tcpKey(client, server, 40000, 443)
	runTCP(t, tab, k, handshake)
	rk := replyKey(&k)
	ping := echoKey(client, server, 9)
	mustCommit(t, tab, &Packet{Key: ping, ICMPType: icmpEchoRequest})

	icmp := func(src, dst string, typ uint8) *Packet {
		return &Packet{Key: mkKey(protoICMP, src, dst, 0, 0), ICMPType: typ, ICMPCode: 4}
	}
	tests := []struct {
		name  string
		p     *Packet
		inner Key
		want  CtState
		dir   Dir
	}{
		{"router to client about client's packet", icmp(router, client, 3), k, StateRelated, DirReply},
		{"server to client about client's packet", icmp(server, client, 11), k, StateRelated, DirReply},
		{"router to server about server's packet", icmp(router, server, 3), rk, StateRelated, DirOriginal},
		{"error about an echo request", icmp(router, client, 3), ping, StateRelated, DirReply},
		{"forged: outer dst is not the quoting sender", icmp(router, other, 3), k, StateInvalid, 0},
		{"forged: sent to the destination of the quoted packet", icmp(router, server, 3), k, StateInvalid, 0},
		{"forged: no such flow", icmp(router, client, 3), tcpKey(client, server, 40001, 443), StateInvalid, 0},
		{"not an error type", icmp(router, client, 8), k, StateInvalid, 0},
		{"unknown type", icmp(router, client, 42), k, StateInvalid, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, _, _ := flow(tab, k)
			r := tab.TrackICMPError(tc.p, tc.inner)
			if r.State != tc.want {
				t.Fatalf("got %+v, want %v", r, tc.want)
			}
			if tc.want == StateRelated && (!r.Found || r.Dir != tc.dir || r.Verdict.Action != 1) {
				t.Fatalf("got %+v, want found, dir %v, cached verdict", r, tc.dir)
			}
			if after, _, _ := flow(tab, k); after != before {
				t.Fatal("an ICMP error changed the flow")
			}
		})
	}
	if tab.Len() != 2 {
		t.Fatalf("Len %d, errors must not create entries", tab.Len())
	}
	v6 := echoKey("2001:2::1", "2001:2:0:1::1", 3)
	mustCommit(t, tab, &Packet{Key: v6, ICMPType: icmpv6EchoRequest})
	p6 := &Packet{Key: mkKey(protoICMPv6, "2001:2::ff", "2001:2::1", 0, 0), ICMPType: 2}
	if r := tab.TrackICMPError(p6, v6); r.State != StateRelated {
		t.Fatalf("ICMPv6 packet too big: %+v", r)
	}
	p6.ICMPType = 3
	p6.Key.Family = 4
	if r := tab.TrackICMPError(p6, v6); r.State != StateInvalid {
		t.Fatalf("family mismatch: %+v", r)
	}
}

// assure drives a TCP flow through the handshake so it is ASSURED.
func assure(t *testing.T, tab *Table, k Key) {
	t.Helper()
	rk := replyKey(&k)
	tab.Track(&Packet{Key: rk, TCPFlags: fSYNACK})
	tab.Track(&Packet{Key: k, TCPFlags: fACK})
	if e, _, _ := flow(tab, k); e.flags&eAssured == 0 {
		t.Fatalf("flow %v not assured", k)
	}
}

func TestEvictionOrder(t *testing.T) {
	tab, clk := newTestTable(t, func(c *Config) { c.MaxFlows = 4; c.MaxHalfOpen = 1 })
	keys := make([]Key, 8)
	for i := range keys {
		keys[i] = tcpKey(fmt.Sprintf("198.18.0.%d", i+1), "198.18.1.1", 40000, 80)
	}
	open := func(i int) error {
		clk.Advance(time.Millisecond)
		return tab.Commit(&Packet{Key: keys[i], TCPFlags: fSYN}, Verdict{})
	}
	present := func() (out []int) {
		for i, k := range keys {
			if _, _, ok := flow(tab, k); ok {
				out = append(out, i)
			}
		}
		return out
	}
	for i := range 4 {
		if err := open(i); err != nil {
			t.Fatal(err)
		}
	}
	assure(t, tab, keys[0])
	assure(t, tab, keys[2])

	steps := []struct {
		open int
		want []int
	}{
		{4, []int{0, 2, 3, 4}}, // 1 is the oldest unassured
		{5, []int{0, 2, 4, 5}}, // then 3
		{6, []int{0, 2, 5, 6}}, // then 4; 0 and 2 are older but assured
	}
	for _, s := range steps {
		if err := open(s.open); err != nil {
			t.Fatalf("open %d: %v", s.open, err)
		}
		if got := present(); fmt.Sprint(got) != fmt.Sprint(s.want) {
			t.Fatalf("after opening %d: flows %v, want %v", s.open, got, s.want)
		}
		checkInvariants(t, tab)
	}
	assure(t, tab, keys[5])
	assure(t, tab, keys[6])
	if err := open(7); !errors.Is(err, ErrTableFull) {
		t.Fatalf("all assured: %v, want ErrTableFull", err)
	}
	st := tab.Stats()
	if st.EarlyDrop != 3 || st.Drop != 1 || st.InsertFailed != 1 || tab.Len() != 4 {
		t.Fatalf("stats %v, Len %d", st, tab.Len())
	}
	checkInvariants(t, tab)
}

func TestSourceLimit(t *testing.T) {
	tab, _ := newTestTable(t, func(c *Config) { c.MaxFlowsPerSource = 2 })
	commit := func(src string, port uint16) error {
		return tab.Commit(&Packet{Key: udpKey(src, "198.18.1.1", port, 53)}, Verdict{})
	}
	for _, tc := range []struct {
		src  string
		port uint16
		want error
	}{
		{"198.18.0.1", 1, nil},
		{"198.18.0.1", 2, nil},
		{"198.18.0.1", 3, ErrSourceLimit},
		{"198.18.0.2", 1, nil},
		{"198.18.0.1", 1, nil}, // already tracked: not a new flow
		{"2001:2::1", 1, nil},
		{"2001:2::2", 1, nil},                 // same /64
		{"2001:2::ffff:1", 1, ErrSourceLimit}, // same /64
		{"2001:2:0:1::1", 1, nil},             // another /64
	} {
		if err := commit(tc.src, tc.port); !errors.Is(err, tc.want) {
			t.Fatalf("%s:%d: %v, want %v", tc.src, tc.port, err, tc.want)
		}
	}
	if !tab.Delete(udpKey("198.18.0.1", "198.18.1.1", 1, 53)) {
		t.Fatal("Delete failed")
	}
	if err := commit("198.18.0.1", 3); err != nil {
		t.Fatalf("after Delete: %v", err)
	}
	if st := tab.Stats(); st.SourceLimit != 2 || st.InsertFailed != 2 {
		t.Fatalf("stats %v", st)
	}
	checkInvariants(t, tab)
}

func TestDeleteSetVerdictReverseKey(t *testing.T) {
	tab, _ := newTestTable(t, nil)
	k := udpKey("198.18.0.1", "198.18.1.1", 1000, 53)
	rk := replyKey(&k)
	mustCommit(t, tab, &Packet{Key: k})
	if !tab.SetVerdict(rk, Verdict{Action: 9, Rule: 3}) {
		t.Fatal("SetVerdict by reply key failed")
	}
	if r := tab.Track(&Packet{Key: k}); r.Verdict != (Verdict{9, 3}) {
		t.Fatalf("verdict %+v", r.Verdict)
	}
	if tab.SetVerdict(udpKey("198.18.0.1", "198.18.1.1", 1001, 53), Verdict{}) {
		t.Fatal("SetVerdict on unknown flow")
	}
	if !tab.Delete(rk) || tab.Delete(k) || tab.Len() != 0 {
		t.Fatalf("Delete by reply key: Len %d", tab.Len())
	}
	checkInvariants(t, tab)
}

func TestSweep(t *testing.T) {
	tab, clk := newTestTable(t, func(c *Config) { c.MaxHalfOpenPerSource = 4096; c.MaxHalfOpen = 1 })
	for i := range 2000 {
		mustCommit(t, tab, &Packet{Key: udpKey("198.18.0.1", "198.18.1.1", uint16(i), 53)})
	}
	k := tcpKey("198.18.0.2", "198.18.1.1", 1, 80)
	runTCP(t, tab, k, handshake)
	clk.Advance(31 * time.Second)
	tab.sweepAll()
	if tab.Len() != 1 || tab.Stats().Expired != 2000 {
		t.Fatalf("after sweep: Len %d, stats %v", tab.Len(), tab.Stats())
	}
	checkInvariants(t, tab)
	// The flows came back after expiring: the same keys are tracked again.
	for i := range 2000 {
		mustCommit(t, tab, &Packet{Key: udpKey("198.18.0.1", "198.18.1.1", uint16(i), 53)})
	}
	if tab.Len() != 2001 {
		t.Fatalf("Len %d after re-adding", tab.Len())
	}
	checkInvariants(t, tab)
}

func TestRunStopsWithContext(t *testing.T) {
	tab, clk := newTestTable(t, nil)
	mustCommit(t, tab, &Packet{Key: udpKey("198.18.0.1", "198.18.1.1", 1, 53)})
	clk.Advance(time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { tab.Run(ctx); close(done) }()
	// The sweeper reaches every shard within a pass; wait for it.
	for tab.Len() != 0 {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
}

func TestRange(t *testing.T) {
	tab, clk := newTestTable(t, nil)
	tk := tcpKey("198.18.0.1", "198.18.1.1", 40000, 80)
	runTCP(t, tab, tk, handshake)
	uk := udpKey("198.18.0.1", "198.18.1.1", 5000, 53)
	mustCommit(t, tab, &Packet{Key: uk, Len: 80})
	clk.Advance(10 * time.Second)
	got := map[uint8]FlowInfo{}
	tab.Range(func(fi FlowInfo) bool { got[fi.Proto] = fi; return true })
	if len(got) != 2 {
		t.Fatalf("Range: %v", got)
	}
	ti, ui := got[protoTCP], got[protoUDP]
	if ti.Orig != tk || ti.Reply != replyKey(&tk) || ti.TCPState != "ESTABLISHED" || !ti.Assured || !ti.SeenReply ||
		ti.Packets != [2]uint64{2, 1} || ti.Timeout != 5*24*time.Hour-10*time.Second || ti.Verdict.Rule != 7 {
		t.Fatalf("tcp %+v", ti)
	}
	if ui.TCPState != "" || ui.Assured || ui.SeenReply || ui.Bytes != [2]uint64{80, 0} || ui.Timeout != 20*time.Second {
		t.Fatalf("udp %+v", ui)
	}
	n := 0
	tab.Range(func(FlowInfo) bool { n++; return false })
	if n != 1 {
		t.Fatalf("Range did not stop: %d calls", n)
	}
	// fn may call back into the table.
	tab.Range(func(fi FlowInfo) bool { tab.Delete(fi.Orig); return true })
	if tab.Len() != 0 {
		t.Fatalf("Len %d", tab.Len())
	}
}

func TestConfig(t *testing.T) {
	var c Config
	c.Defaults()
	if c.MaxFlows != 262144 || c.MaxFlowsPerSource != 4096 || c.Timeouts.TCPEstablished.D() != 5*24*time.Hour ||
		c.MaxHalfOpen != 0.25 || c.MaxHalfOpenPerSource != 1024 || c.Loose ||
		c.Timeouts.UDPStream.D() != 120*time.Second || c.Timeouts.TCPClose.D() != 10*time.Second {
		t.Fatalf("defaults %+v", c)
	}
	if errs := c.Validate(); len(errs) != 0 {
		t.Fatalf("defaults invalid: %v", errs)
	}
	var f struct {
		Conntrack Config `toml:"conntrack"`
	}
	_, err := toml.Decode(`
[conntrack]
max_flows = 1000
loose = true
max_half_open = 0.5
max_half_open_per_source = 64
[conntrack.timeouts]
tcp_established = "1d"
udp = "10s"
`, &f)
	if err != nil {
		t.Fatal(err)
	}
	f.Conntrack.Defaults()
	if f.Conntrack.MaxFlows != 1000 || f.Conntrack.Timeouts.TCPEstablished.D() != 24*time.Hour ||
		f.Conntrack.Timeouts.UDP.D() != 10*time.Second || f.Conntrack.Timeouts.ICMP.D() != 30*time.Second ||
		!f.Conntrack.Loose || f.Conntrack.MaxHalfOpen != 0.5 || f.Conntrack.MaxHalfOpenPerSource != 64 ||
		f.Conntrack.Timeouts.TCPUnack.D() != 300*time.Second {
		t.Fatalf("decoded %+v", f.Conntrack)
	}
	bad := c
	bad.MaxFlows = -1
	bad.MaxFlowsPerSource = -5
	bad.Timeouts.UDP = -1
	bad.MaxHalfOpen = 1.5
	bad.MaxHalfOpenPerSource = -1
	var keys []string
	for _, e := range bad.Validate() {
		keys = append(keys, strings.Join(e.Key, "."))
	}
	if want := "conntrack.max_flows conntrack.max_flows_per_source conntrack.max_half_open conntrack.max_half_open_per_source conntrack.timeouts.udp"; strings.Join(keys, " ") != want {
		t.Fatalf("errors at %v, want %s", keys, want)
	}
}

func TestNames(t *testing.T) {
	for s, want := range map[CtState]string{StateNew: "new", StateEstablished: "established", StateRelated: "related", StateInvalid: "invalid", 9: "unknown"} {
		if s.String() != want {
			t.Errorf("%d: %q", s, s.String())
		}
	}
	if TCPSynSent2.String() != "SYN_SENT2" || TCPTimeWait.String() != "TIME_WAIT" || TCPState(50).String() != "INVALID" {
		t.Error("TCPState names")
	}
	s := Stats{Found: 3, EarlyDrop: 2}
	if got := s.String(); !strings.Contains(got, "found=3") || !strings.Contains(got, "early_drop=2") {
		t.Errorf("Stats.String %q", got)
	}
}

func TestTrackAllocs(t *testing.T) {
	tab, _ := newTestTable(t, nil)
	k := tcpKey("198.18.0.1", "198.18.1.1", 40000, 80)
	runTCP(t, tab, k, handshake)
	o, r := &Packet{Key: k, TCPFlags: fPSHACK, Len: 1500}, &Packet{Key: replyKey(&k), TCPFlags: fACK, Len: 52}
	u := udpKey("198.18.0.1", "198.18.1.1", 1, 53)
	mustCommit(t, tab, &Packet{Key: u})
	up := &Packet{Key: u}
	miss := &Packet{Key: tcpKey("198.18.0.9", "198.18.1.1", 1, 80), TCPFlags: fSYN}
	if n := testing.AllocsPerRun(1000, func() {
		tab.Track(o)
		tab.Track(r)
		tab.Track(up)
		tab.Track(miss)
	}); n != 0 {
		t.Fatalf("Track allocates %.1f times per run", n)
	}
}

func TestConcurrent(t *testing.T) {
	tab, clk := newTestTable(t, func(c *Config) { c.MaxFlows = 64; c.MaxFlowsPerSource = 16 })
	ctx, cancel := context.WithCancel(context.Background())
	var sweeper sync.WaitGroup
	sweeper.Go(func() { tab.Run(ctx) })
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 3000 {
				k := udpKey(fmt.Sprintf("198.18.0.%d", (g+i)%7+1), "198.18.1.1", uint16(i%40), 53)
				switch i % 7 {
				case 0, 1, 2:
					if r := tab.Track(&Packet{Key: k}); r.State == StateNew {
						_ = tab.Commit(&Packet{Key: k}, Verdict{})
					}
				case 3:
					tab.Track(&Packet{Key: replyKey(&k)})
				case 4:
					tab.Delete(k)
				case 5:
					clk.Advance(time.Second)
				case 6:
					tab.Range(func(FlowInfo) bool { return true })
				}
				if n := tab.Len(); n > 64 {
					t.Errorf("Len %d > max_flows", n)
					return
				}
			}
		})
	}
	wg.Wait()
	cancel()
	sweeper.Wait()
	checkInvariants(t, tab)
}

func TestCoarseClock(t *testing.T) {
	tab := New(Config{}, Options{})
	if tab.coarse.Load() != 0 {
		t.Fatal("coarse clock set without Run")
	}
	before := tab.now()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { tab.Run(ctx); close(done) }()
	for tab.coarse.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	if c := tab.now(); c < before {
		t.Fatalf("coarse clock %d went back from %d", c, before)
	}
	first := tab.coarse.Load()
	for tab.coarse.Load() == first {
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	if tab.coarse.Load() != 0 {
		t.Fatal("coarse clock left frozen after Run returned")
	}
}
