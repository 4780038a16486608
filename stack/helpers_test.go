package stack

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tungate/tungate/stack/packet"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

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

func tcpHdr(sport, dport uint16, seq, ack uint32, flags uint8, payload []byte) []byte {
	b := make([]byte, 20+len(payload))
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint32(b[4:], seq)
	binary.BigEndian.PutUint32(b[8:], ack)
	b[12] = 5 << 4
	b[13] = flags
	binary.BigEndian.PutUint16(b[14:], 65535)
	copy(b[20:], payload)
	return b
}

func udpHdr(sport, dport uint16, payload []byte) []byte {
	b := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint16(b[4:], uint16(len(b)))
	copy(b[8:], payload)
	return b
}

func echoHdr(v6 bool, id, seq uint16, payload []byte) []byte {
	b := make([]byte, 8+len(payload))
	b[0] = 8
	if v6 {
		b[0] = 128
	}
	binary.BigEndian.PutUint16(b[4:], id)
	binary.BigEndian.PutUint16(b[6:], seq)
	copy(b[8:], payload)
	return b
}

// ipPkt wraps l4 in an IP header from src to dst (TTL 64, DF on IPv4)
// and fills the transport checksum.
func ipPkt(src, dst netip.Addr, proto uint8, l4 []byte) []byte {
	family, ipLen := uint8(4), header.IPv4MinimumSize
	if src.Is6() {
		family, ipLen = 6, header.IPv6MinimumSize
	}
	if proto == packet.ProtoICMP && family == 6 {
		proto = packet.ProtoICMPv6
	}
	out := make([]byte, ipLen+len(l4))
	s, d := tcpip.AddrFromSlice(src.AsSlice()), tcpip.AddrFromSlice(dst.AsSlice())
	if family == 4 {
		ip := header.IPv4(out)
		ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(out)), Flags: header.IPv4FlagDontFragment, TTL: 64, Protocol: proto, SrcAddr: s, DstAddr: d})
		ip.SetChecksum(^ip.CalculateChecksum())
	} else {
		header.IPv6(out).Encode(&header.IPv6Fields{PayloadLength: uint16(len(l4)), TransportProtocol: tcpip.TransportProtocolNumber(proto), HopLimit: 64, SrcAddr: s, DstAddr: d})
	}
	copy(out[ipLen:], l4)
	fillChecksum(out, family, ipLen, proto)
	return out
}

// fillChecksum computes the transport checksum of the segment at
// pkt[l4:]: over the pseudo-header for TCP, UDP and ICMPv6, over the
// message alone for ICMPv4.
func fillChecksum(pkt []byte, family uint8, l4 int, proto uint8) {
	off, ok := map[uint8]int{packet.ProtoTCP: 16, packet.ProtoUDP: 6, packet.ProtoICMP: 2, packet.ProtoICMPv6: 2}[proto]
	if !ok {
		return // an extension header: the caller fills the transport's
	}
	seg := pkt[l4:]
	seg[off], seg[off+1] = 0, 0
	var sum uint16
	if proto != packet.ProtoICMP {
		var src, dst []byte
		if family == 4 {
			src, dst = pkt[12:16], pkt[16:20]
		} else {
			src, dst = pkt[8:24], pkt[24:40]
		}
		sum = header.PseudoHeaderChecksum(tcpip.TransportProtocolNumber(proto), tcpip.AddrFromSlice(src), tcpip.AddrFromSlice(dst), uint16(len(seg)))
	}
	binary.BigEndian.PutUint16(seg[off:], ^checksum.Checksum(seg, sum))
}

func synPkt(src, dst netip.Addr, sport, dport uint16) []byte {
	return ipPkt(src, dst, packet.ProtoTCP, tcpHdr(sport, dport, 1000, 0, 0x02, nil))
}
