package stack

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tungate/tungate/stack/packet/packettest"

	"github.com/tungate/tungate/conntrack"
	"github.com/tungate/tungate/policy"
	"github.com/tungate/tungate/tun"
)

// Test addresses: clients in 198.18.1.0/24 and 2001:2:0:1::/64, servers in
// 198.18.2.0/24 and 2001:2:0:2::/64.
var (
	cli4 = netip.MustParseAddr("198.18.1.2")
	srv4 = netip.MustParseAddr("198.18.2.1")
	cli6 = netip.MustParseAddr("2001:2:0:1::2")
	srv6 = netip.MustParseAddr("2001:2:0:2::1")
)

// Port plan of testPolicy.
const (
	portAllow     = 80 // tcp allow (payload rule armed)
	portReject    = 81 // tcp reject
	portDrop      = 82 // tcp: default drop
	portRefused   = 83 // tcp allow, but the upstream refuses
	portUDPAllow  = 53
	portUDPReject = 54
)

// testPolicy is a realistic small rule set covering every action.
func testPolicy(t testing.TB, decisions string) *policy.Policy {
	t.Helper()
	p, err := policy.Compile(policy.Config{
		Defaults: policy.Defaults{Policy: "drop"},
		Rules: []policy.RuleConfig{
			{Name: "no-evil", Proto: policy.List{"tcp"}, Payload: []policy.PayloadConfig{{Contains: "EVIL"}}, Action: "reject"},
			{Name: "allow-web", Proto: policy.List{"tcp"}, DstPort: policy.List{int64(portAllow), int64(portRefused)}, Action: "allow"},
			{Name: "reject-81", Proto: policy.List{"tcp"}, DstPort: policy.List{int64(portReject)}, Action: "reject"},
			{Name: "allow-dns", Proto: policy.List{"udp"}, DstPort: policy.List{int64(portUDPAllow)}, Action: "allow"},
			{Name: "reject-udp", Proto: policy.List{"udp"}, DstPort: policy.List{int64(portUDPReject)}, Action: "reject"},
			{Name: "allow-ping", Proto: policy.List{"icmp", "icmpv6"}, Action: "allow"},
		},
		Log: policy.LogConfig{Decisions: decisions, Rate: "1000/s"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// syncBuffer is a concurrency-safe log sink.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fakeEcho answers echoes per a function and records calls.
type fakeEcho struct {
	fn func(dst netip.Addr, id, seq uint16, payload []byte) ([]byte, error)
}

func (f *fakeEcho) Echo(ctx context.Context, dst netip.Addr, id, seq uint16, payload []byte, _ time.Duration) ([]byte, error) {
	return f.fn(dst, id, seq, payload)
}

// harness is a running Stack over one MemDevice.
type harness struct {
	s    *Stack
	mem  *tun.MemDevice
	ct   *conntrack.Table
	log  *syncBuffer
	stop func() // cancels Run and waits for it (idempotent)
}

type harnessOpts struct {
	dialTCP func(ctx context.Context, dst netip.AddrPort) (*net.TCPConn, error)
	dialUDP func(ctx context.Context, dst netip.AddrPort) (*net.UDPConn, error)
	echo    Echoer
	pol     *policy.Policy
	clock   func() time.Time // the budgets' clock
	noRun   bool
}

func newHarness(t testing.TB, o harnessOpts) *harness {
	t.Helper()
	h := &harness{mem: tun.NewMemDevice(16), log: &syncBuffer{}}
	if o.pol == nil {
		o.pol = testPolicy(t, "all")
	}
	if o.echo == nil {
		o.echo = &fakeEcho{fn: func(netip.Addr, uint16, uint16, []byte) ([]byte, error) {
			return nil, errors.New("no echo in this test")
		}}
	}
	refuse := func(ctx context.Context, dst netip.AddrPort) (*net.TCPConn, error) {
		return nil, errors.New("no upstream in this test")
	}
	if o.dialTCP == nil {
		o.dialTCP = refuse
	}
	if o.dialUDP == nil {
		o.dialUDP = func(ctx context.Context, dst netip.AddrPort) (*net.UDPConn, error) {
			return nil, errors.New("no upstream in this test")
		}
	}
	s, err := New(Options{
		MTU:     1500,
		Devices: []tun.Device{h.mem},
		Policy:  o.pol,
		Log:     slog.New(slog.NewJSONHandler(h.log, nil)),
		DialTCP: o.dialTCP,
		DialUDP: o.dialUDP,
		Echoer:  o.echo,
		Clock:   o.clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	h.s = s
	h.ct = s.Conntrack()
	if o.noRun {
		t.Cleanup(func() { s.gs.Destroy() })
		return h
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	h.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Errorf("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(h.stop)
	return h
}

// next returns the next packet the Stack wrote that satisfies keep,
// failing the test after a generous deadline.
func (h *harness) next(t testing.TB, keep func([]byte) bool) []byte {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case p, ok := <-h.mem.Sent():
			if !ok {
				t.Fatal("device closed")
			}
			if keep == nil || keep(p) {
				return p
			}
		case <-deadline:
			t.Fatal("no matching packet written to the TUN")
			return nil
		}
	}
}

// waitFor polls cond (a Stats condition) until it holds.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// One-line packet builders. They compute correct checksums unless the
// caller breaks them afterwards.

// One-line packet builders (packettest), under the names these tests use.
var (
	tcpHdr  = packettest.TCPHdr
	udpHdr  = packettest.UDPHdr
	echoHdr = packettest.EchoHdr
	ipPkt   = packettest.IP
	synPkt  = packettest.SYN
)
