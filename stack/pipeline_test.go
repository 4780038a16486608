package stack

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tungate/tungate/stack/packet/packettest"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	gstack "gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"

	"fmt"
	"slices"

	"github.com/tungate/tungate/policy"
	"github.com/tungate/tungate/tun"
)

// clientStack is a second gVisor stack playing the clients behind the
// gateway: its link is wired to the gateway's MemDevice, so everything it
// sends is read by the Stack under test and everything the Stack writes
// reaches it.
func clientStack(t testing.TB, mem *tun.MemDevice) *gstack.Stack {
	return fragmentingClientStack(t, mem, 0)
}

// fragmentingClientStack is clientStack whose packets with more than
// frag bytes of IP payload reach the gateway as IP fragments of frag
// bytes each (0: never), as from a client behind a smaller-MTU link.
func fragmentingClientStack(t testing.TB, mem *tun.MemDevice, frag int) *gstack.Stack {
	t.Helper()
	cs := gstack.New(gstack.Options{
		NetworkProtocols:   []gstack.NetworkProtocolFactory{ipv4.NewProtocol, ipv6.NewProtocol},
		TransportProtocols: []gstack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol},
	})
	ep := channel.New(1024, 1500, "")
	if err := cs.CreateNIC(1, ep); err != nil {
		t.Fatal(err)
	}
	for _, a := range []netip.Addr{cli4, cli6} {
		proto := ipv4.ProtocolNumber
		if a.Is6() {
			proto = ipv6.ProtocolNumber
		}
		pa := tcpip.ProtocolAddress{Protocol: proto, AddressWithPrefix: tcpip.AddrFromSlice(a.AsSlice()).WithPrefix()}
		if err := cs.AddProtocolAddress(1, pa, gstack.AddressProperties{}); err != nil {
			t.Fatal(err)
		}
	}
	cs.SetRouteTable([]tcpip.Route{
		{Destination: header.IPv4EmptySubnet, NIC: 1},
		{Destination: header.IPv6EmptySubnet, NIC: 1},
	})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	// client -> gateway; ends with ctx.
	go func() {
		defer wg.Done()
		for {
			pkt := ep.ReadContext(ctx)
			if pkt == nil {
				return
			}
			v := pkt.ToView()
			pkt.DecRef()
			if b := v.AsSlice(); frag > 0 && len(b) > frag+60 {
				for _, f := range packettest.Fragments(b, frag, uint32(len(b))) {
					mem.Inject(f)
				}
			} else {
				mem.Inject(b)
			}
			v.Release()
		}
	}()
	// gateway -> client; ends when the device's Sent channel closes.
	go func() {
		defer wg.Done()
		for b := range mem.Sent() {
			proto := ipv4.ProtocolNumber
			if b[0]>>4 == 6 {
				proto = ipv6.ProtocolNumber
			}
			pkt := gstack.NewPacketBuffer(gstack.PacketBufferOptions{Payload: buffer.MakeWithData(b)})
			ep.InjectInbound(proto, pkt)
			pkt.DecRef()
		}
	}()
	t.Cleanup(func() {
		cancel()
		_ = mem.Close()
		wg.Wait()
		cs.Destroy()
	})
	return cs
}

// upstreams are the real servers behind the gateway, on loopback.
type upstreams struct {
	echoTCP  *net.TCPListener
	received chan []byte // everything one echoTCP connection received, when it ends
	udp      *net.UDPConn
}

// maxRecorded bounds what an upstream connection remembers, so a
// benchmark's stream does not turn into one huge buffer.
const maxRecorded = 1 << 20

func startUpstreams(t testing.TB) *upstreams {
	t.Helper()
	u := &upstreams{received: make(chan []byte, 16)}
	var err error
	u.echoTCP, err = net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	u.udp, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	// Accept loop: ends when the listener closes. Each connection echoes
	// what it reads, and after the client's FIN writes "bye" and closes.
	go func() {
		defer wg.Done()
		for {
			c, err := u.echoTCP.AcceptTCP()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				var all bytes.Buffer
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					if all.Len() < maxRecorded {
						all.Write(buf[:n])
					}
					if n > 0 {
						if _, werr := c.Write(buf[:n]); werr != nil {
							break
						}
					}
					if err != nil {
						if err == io.EOF {
							_, _ = c.Write([]byte("bye"))
						}
						break
					}
				}
				u.received <- all.Bytes()
			}()
		}
	}()
	// UDP echo: ends when the socket closes.
	go func() {
		defer wg.Done()
		buf := make([]byte, 65536)
		for {
			n, a, err := u.udp.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			_, _ = u.udp.WriteToUDPAddrPort(buf[:n], a)
		}
	}()
	t.Cleanup(func() {
		u.echoTCP.Close()
		u.udp.Close()
		wg.Wait()
	})
	return u
}

// dialUDP is a harness's UDP dialer that sends every flow to the UDP echo.
func (u *upstreams) dialUDP(ctx context.Context, _ netip.AddrPort) (*net.UDPConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "udp", u.udp.LocalAddr().String())
	if err != nil {
		return nil, err
	}
	return c.(*net.UDPConn), nil
}

// dialTCPTo is the body of a harness's TCP dialer: a connection to the
// loopback address addr.
func dialTCPTo(ctx context.Context, addr string) (*net.TCPConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// pipeline is a gateway Stack between a client stack and loopback
// upstreams: every TCP destination port maps to the echo listener except
// portRefused, which maps to a closed port.
type pipeline struct {
	h   *harness
	cs  *gstack.Stack
	ups *upstreams
}

func newPipeline(t testing.TB) *pipeline { return newPipelineWith(t, nil) }

// newPipelineWith is newPipeline under policy pol (nil: testPolicy).
func newPipelineWith(t testing.TB, pol *policy.Policy) *pipeline {
	return newFragmentingPipeline(t, pol, 0)
}

// newFragmentingPipeline is newPipelineWith whose client fragments its
// packets (fragmentingClientStack).
func newFragmentingPipeline(t testing.TB, pol *policy.Policy, frag int) *pipeline {
	ups := startUpstreams(t)
	closed, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	refusedAddr := closed.Addr().String()
	closed.Close()
	h := newHarness(t, harnessOpts{
		pol: pol,
		dialTCP: func(ctx context.Context, dst netip.AddrPort) (*net.TCPConn, error) {
			addr := ups.echoTCP.Addr().String()
			if dst.Port() == portRefused {
				addr = refusedAddr
			}
			return dialTCPTo(ctx, addr)
		},
		dialUDP: ups.dialUDP,
	})
	return &pipeline{h: h, cs: fragmentingClientStack(t, h.mem, frag), ups: ups}
}

func (pl *pipeline) dial(ctx context.Context, dst netip.Addr, port uint16) (*gonet.TCPConn, error) {
	proto := ipv4.ProtocolNumber
	if dst.Is6() {
		proto = ipv6.ProtocolNumber
	}
	return gonet.DialContextTCP(ctx, pl.cs, tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFromSlice(dst.AsSlice()), Port: port}, proto)
}

// open dials dst:port through the gateway for the rest of the test: the
// connection has 10 s for everything and closes when the test ends.
func (pl *pipeline) open(t *testing.T, dst netip.Addr, port uint16) *gonet.TCPConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pl.dial(ctx, dst, port)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

func TestPipelineTCP(t *testing.T) {
	pl := newPipeline(t)
	for _, fam := range families() {
		t.Run(fam.name+"/allowed echo with half-close", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := pl.dial(ctx, fam.srv, portAllow)
			if err != nil {
				t.Fatalf("dial allowed port: %v", err)
			}
			defer c.Close()
			msg := bytes.Repeat([]byte("hello through the gateway "), 4000) // ~100 KB: many segments
			go func() {
				_, _ = c.Write(msg)
				_ = c.CloseWrite()
			}()
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			got, err := io.ReadAll(c)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			want := append(append([]byte(nil), msg...), "bye"...)
			if !bytes.Equal(got, want) {
				t.Fatalf("client got %d bytes, want %d (echo + bye after half-close)", len(got), len(want))
			}
			if rec := <-pl.ups.received; !bytes.Equal(rec, msg) {
				t.Errorf("upstream received %d bytes, want %d", len(rec), len(msg))
			}
		})
		t.Run(fam.name+"/rejected port is refused", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := pl.dial(ctx, fam.srv, portReject)
			if err == nil || !strings.Contains(err.Error(), "refused") {
				t.Fatalf("dial rejected port: err = %v, want connection refused", err)
			}
		})
		t.Run(fam.name+"/upstream refusal reaches the client", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := pl.dial(ctx, fam.srv, portRefused)
			if err == nil || !strings.Contains(err.Error(), "refused") {
				t.Fatalf("dial port whose upstream refuses: err = %v, want connection refused", err)
			}
		})
		t.Run(fam.name+"/dropped port times out", func(t *testing.T) {
			before := pl.h.s.Stats().PolicyDrops
			ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
			defer cancel()
			_, err := pl.dial(ctx, fam.srv, portDrop)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("dial dropped port: err = %v, want the client's own timeout", err)
			}
			if pl.h.s.Stats().PolicyDrops == before {
				t.Errorf("PolicyDrops did not grow")
			}
		})
		t.Run(fam.name+"/split payload pattern resets", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			hits := pl.h.s.Stats().PayloadHits
			c, err := pl.dial(ctx, fam.srv, portAllow)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer c.Close()
			if _, err := c.Write([]byte("GET /?q=EV")); err != nil {
				t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond) // two separate segments
			_, _ = c.Write([]byte("IL HTTP/1.0\r\n\r\n"))
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, err = io.ReadAll(c)
			if err == nil || !strings.Contains(err.Error(), "reset") {
				t.Errorf("client read after pattern: err = %v, want connection reset", err)
			}
			select {
			case rec := <-pl.ups.received:
				if bytes.Contains(rec, []byte("EVIL")) {
					t.Errorf("upstream received the pattern: %q", rec)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("upstream connection did not end")
			}
			waitFor(t, "payload hit counted", func() bool { return pl.h.s.Stats().PayloadHits == hits+1 })
			if !strings.Contains(pl.h.log.String(), `"pattern":"EVIL"`) {
				t.Errorf("no decision line with the pattern in %s", pl.h.log.String())
			}
		})
	}
	if st := pl.h.s.Stats(); st.PayloadHits != 2 || st.PolicyRejects < 2 || st.TCPDialFailures < 2 {
		t.Errorf("stats: PayloadHits %d (want 2), PolicyRejects %d (want >= 2), TCPDialFailures %d (want >= 2)", st.PayloadHits, st.PolicyRejects, st.TCPDialFailures)
	}
}

func TestPipelineUDP(t *testing.T) {
	pl := newPipeline(t)
	for _, fam := range families() {
		t.Run(fam.name, func(t *testing.T) {
			proto := ipv4.ProtocolNumber
			if fam.srv.Is6() {
				proto = ipv6.ProtocolNumber
			}
			to := func(port uint16) *tcpip.FullAddress {
				return &tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFromSlice(fam.srv.AsSlice()), Port: port}
			}
			c, err := gonet.DialUDP(pl.cs, nil, to(portUDPAllow), proto)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for i := range 3 {
				msg := []byte("query " + string(rune('a'+i)))
				if _, err := c.Write(msg); err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, 100)
				_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
				n, err := c.Read(buf)
				if err != nil || !bytes.Equal(buf[:n], msg) {
					t.Fatalf("udp echo %d: got %q, %v; want %q", i, buf[:n], err, msg)
				}
			}
			// The gateway's client-facing endpoint of the flow queues at
			// most udp_receive_buffer.
			var rcvbufs []int64
			for _, te := range pl.h.s.gs.RegisteredEndpoints() {
				if ep, ok := te.(interface{ SocketOptions() *tcpip.SocketOptions }); ok && strings.Contains(fmt.Sprintf("%T", te), "udp.") {
					rcvbufs = append(rcvbufs, ep.SocketOptions().GetReceiveBufferSize())
				}
			}
			if len(rcvbufs) == 0 || slices.ContainsFunc(rcvbufs, func(n int64) bool { return n != int64(pl.h.s.cfg.UDPReceiveBuffer) }) {
				t.Errorf("gateway UDP endpoints' receive buffers %v, want all %d", rcvbufs, pl.h.s.cfg.UDPReceiveBuffer)
			}

			// gonet hides ICMP errors from Read, so use the endpoint: the
			// port unreachable must surface as its last error.
			var wq waiter.Queue
			ep, terr := pl.cs.NewEndpoint(udp.ProtocolNumber, proto, &wq)
			if terr != nil {
				t.Fatal(terr)
			}
			defer ep.Close()
			if terr := ep.Connect(*to(portUDPReject)); terr != nil {
				t.Fatal(terr)
			}
			var payload bytes.Reader
			payload.Reset([]byte("x"))
			if _, terr := ep.Write(&payload, tcpip.WriteOptions{}); terr != nil {
				t.Fatal(terr)
			}
			waitFor(t, "connection refused on the rejected UDP flow", func() bool {
				_, refused := ep.LastError().(*tcpip.ErrConnectionRefused)
				return refused
			})
		})
	}
}

// BenchmarkPipelineTCP pushes bytes from a client stack through the
// gateway Stack to a loopback upstream that echoes them back: it measures
// both gVisor stacks plus the hook, relay and loopback, so compare it only
// with itself.
func BenchmarkPipelineTCP(b *testing.B) {
	pl := newPipeline(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pl.dial(ctx, srv4, portAllow)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	chunk := bytes.Repeat([]byte("x"), 64<<10)
	done := make(chan error, 1)
	// Drains the echo; ends when the connection closes.
	go func() {
		_, err := io.Copy(io.Discard, c)
		done <- err
	}()
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	_ = c.CloseWrite()
	<-done
}

// echoOnce writes msg on c and reads the echo back.
func echoOnce(c *gonet.TCPConn, msg []byte) error {
	if _, err := c.Write(msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if !bytes.Equal(got, msg) {
		return errors.New("echo differs")
	}
	return nil
}

// expectReset reads from c until it fails and checks that it was reset.
func expectReset(t *testing.T, c *gonet.TCPConn, what string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.ReadAll(c)
	if err == nil || !strings.Contains(err.Error(), "reset") {
		t.Errorf("%s: read err = %v, want connection reset", what, err)
	}
}

// TestPipelineDecideOnce: the forwarder reuses the SYN's verdict. With a
// limit of 2 flows, exactly two connections work (a second Decide per
// flow would have used up the burst with the first), the kept verdict
// arms the payload rules, and an audit payload hit is logged while the
// flow goes on.
func TestPipelineDecideOnce(t *testing.T) {
	pol, err := policy.Compile(policy.Config{
		Defaults: policy.Defaults{Policy: "drop"},
		Rules: []policy.RuleConfig{
			{Name: "snoop", Proto: policy.List{"tcp"}, Payload: []policy.PayloadConfig{{Contains: "SNOOP"}}, Action: "drop", Mode: "audit"},
			{Name: "no-evil", Proto: policy.List{"tcp"}, Payload: []policy.PayloadConfig{{Contains: "EVIL"}}, Action: "reject"},
			{Name: "limited", Proto: policy.List{"tcp"}, DstPort: policy.List{int64(portAllow)}, Action: "allow",
				Limit: &policy.LimitConfig{Rate: "1/h", Burst: 2, Per: "src", Match: "under"}},
		},
		Log: policy.LogConfig{Decisions: "all", Rate: "1000/s"},
	})
	if err != nil {
		t.Fatal(err)
	}
	pl := newPipelineWith(t, pol)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	c1, err := pl.dial(ctx, srv4, portAllow)
	if err != nil {
		t.Fatalf("first connection within the limit: %v", err)
	}
	defer c1.Close()
	if err := echoOnce(c1, []byte("a SNOOP passes")); err != nil {
		t.Fatalf("audited payload: %v, want it echoed", err)
	}
	waitFor(t, "would-drop line", func() bool {
		return strings.Contains(pl.h.log.String(), `"action":"would-drop"`) && strings.Contains(pl.h.log.String(), `"pattern":"SNOOP"`)
	})

	c2, err := pl.dial(ctx, srv4, portAllow)
	if err != nil {
		t.Fatalf("second connection within the limit: %v", err)
	}
	defer c2.Close()
	if _, err := c2.Write([]byte("GET /EVIL")); err != nil {
		t.Fatal(err)
	}
	expectReset(t, c2, "payload rule armed by the kept verdict")

	short, cancelShort := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancelShort()
	if c3, err := pl.dial(short, srv4, portAllow); err == nil {
		c3.Close()
		t.Errorf("third connection beyond the limit connected")
	}
	if st := pl.h.s.Stats(); st.PayloadHits != 1 || st.AuditHits != 1 || st.NewFlows != 2 {
		t.Errorf("PayloadHits %d, AuditHits %d, NewFlows %d; want 1, 1, 2", st.PayloadHits, st.AuditHits, st.NewFlows)
	}
	if n := pl.h.s.flows.Kept(); n != 0 {
		t.Errorf("%d kept verdicts left after the handlers ran", n)
	}
}

// TestPipelineRecheckTearsDown reloads with existing_flows = "recheck" to
// a policy that allows only one of two open connections: the other is
// reset on its next packet, the allowed one goes on.
func TestPipelineRecheckTearsDown(t *testing.T) {
	const other = 84
	mk := func(recheck string, ports ...any) *policy.Policy {
		p, err := policy.Compile(policy.Config{
			Defaults: policy.Defaults{Policy: "drop"},
			Rules:    []policy.RuleConfig{{Name: "web", Proto: policy.List{"tcp"}, DstPort: policy.List(ports), Action: "allow"}},
			Reload:   policy.ReloadConfig{ExistingFlows: recheck},
			Log:      policy.LogConfig{Decisions: "all", Rate: "1000/s"},
		})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	pl := newPipelineWith(t, mk("", int64(portAllow), int64(other)))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	keep, err := pl.dial(ctx, srv4, portAllow)
	if err != nil {
		t.Fatal(err)
	}
	defer keep.Close()
	gone, err := pl.dial(ctx, srv6, other)
	if err != nil {
		t.Fatal(err)
	}
	defer gone.Close()
	for _, c := range []*gonet.TCPConn{keep, gone} {
		if err := echoOnce(c, []byte("before the reload")); err != nil {
			t.Fatal(err)
		}
	}

	next := mk("recheck", int64(portAllow))
	next.CarryCountersFrom(pl.h.s.pol.Load())
	pl.h.s.SetPolicy(next)
	_, _ = gone.Write([]byte("after the reload"))
	expectReset(t, gone, "connection the new policy denies")
	if err := echoOnce(keep, []byte("after the reload")); err != nil {
		t.Errorf("connection the new policy allows: %v", err)
	}
	if st := pl.h.s.Stats(); st.RecheckTeardowns != 1 {
		t.Errorf("RecheckTeardowns %d, want 1", st.RecheckTeardowns)
	}
	select {
	case <-pl.ups.received: // the denied connection's upstream side ended
	case <-time.After(10 * time.Second):
		t.Error("upstream of the denied connection still open")
	}
}
