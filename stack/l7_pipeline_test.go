package stack

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"

	"github.com/tungate/tungate/conntrack"
	"github.com/tungate/tungate/stack/packet"

	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"

	"github.com/tungate/tungate/internal/units"
	"github.com/tungate/tungate/policy"
)

// Port plan of l7Policy.
const (
	portTLS        = 443  // tls.sni suffix blocked.example: reject
	portHTTP403    = 8080 // http.host blocked.example: reject with http-403
	portHTTPReset  = 8081 // http.host blocked.example: reject (tcp-reset)
	portGreeting   = 2525 // tls.sni pending, but the server speaks first
	portDNS        = 53   // dns.qname: blocked.example NXDOMAIN, dropped.example drop
	dnsAnswerDelay = 700 * time.Millisecond
)

func l7Policy(t testing.TB, decisions string) *policy.Policy {
	t.Helper()
	sm := func(kind string, v ...any) *policy.StringMatch {
		m := &policy.StringMatch{}
		switch kind {
		case "exact":
			m.Exact = v
		case "suffix":
			m.Suffix = v
		}
		return m
	}
	tcp, udptcp := policy.List{"tcp"}, policy.List{"udp", "tcp"}
	p, err := policy.Compile(policy.Config{
		Defaults: policy.Defaults{Policy: "drop"},
		Inspect:  policy.InspectConfig{Timeout: units.Duration(300 * time.Millisecond)},
		Rules: []policy.RuleConfig{
			{Name: "no-evil", Proto: tcp, Payload: []policy.PayloadConfig{{Contains: "EVIL"}}, Action: "reject"},
			{Name: "block-sni", Proto: tcp, DstPort: policy.List{int64(portTLS), int64(portGreeting)}, TLS: &policy.TLSMatch{SNI: sm("suffix", "blocked.example")}, Action: "reject"},
			{Name: "block-host-403", Proto: tcp, DstPort: policy.List{int64(portHTTP403)}, HTTP: &policy.HTTPMatch{Host: sm("exact", "blocked.example")}, Action: "reject", RejectWith: "http-403"},
			{Name: "block-host-rst", Proto: tcp, DstPort: policy.List{int64(portHTTPReset)}, HTTP: &policy.HTTPMatch{Host: sm("exact", "blocked.example")}, Action: "reject"},
			{Name: "nx-blocked", Proto: udptcp, DstPort: policy.List{int64(portDNS)}, DNS: &policy.DNSMatch{QName: sm("suffix", "blocked.example")}, Action: "reject", RejectWith: "dns-nxdomain"},
			{Name: "drop-dropped", Proto: udptcp, DstPort: policy.List{int64(portDNS)}, DNS: &policy.DNSMatch{QName: sm("exact", "dropped.example")}, Action: "drop"},
			{Name: "allow-l7", Proto: policy.List{"tcp", "udp"}, DstPort: policy.List{int64(portTLS), int64(portHTTP403), int64(portHTTPReset), int64(portGreeting), int64(portDNS)}, Action: "allow"},
		},
		Log: policy.LogConfig{Decisions: decisions, Rate: "10000/s"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// greeting is what the server-first upstream says before reading.
const greeting = "220 upstream ready\r\n"

// l7Pipeline is a pipeline whose upstream dials are counted per port;
// portGreeting reaches a server that speaks first, every other port the
// echo server.
type l7Pipeline struct {
	*pipeline
	mu    sync.Mutex // guards dials
	dials map[uint16]int
}

func newL7Pipeline(t testing.TB) *l7Pipeline {
	t.Helper()
	ups := startUpstreams(t)
	greet, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	// Greeting server: says hello, then echoes; ends when the listener closes.
	go func() {
		defer wg.Done()
		for {
			c, err := greet.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				if _, err := io.WriteString(c, greeting); err == nil {
					_, _ = io.Copy(c, c)
				}
			}()
		}
	}()
	t.Cleanup(func() { greet.Close(); wg.Wait() })
	pl := &l7Pipeline{dials: make(map[uint16]int)}
	h := newHarness(t, harnessOpts{
		pol: l7Policy(t, "all"),
		dialTCP: func(ctx context.Context, dst netip.AddrPort) (*net.TCPConn, error) {
			pl.mu.Lock()
			pl.dials[dst.Port()]++
			pl.mu.Unlock()
			addr := ups.echoTCP.Addr().String()
			if dst.Port() == portGreeting {
				addr = greet.Addr().String()
			}
			return dialTCPTo(ctx, addr)
		},
		dialUDP: ups.dialUDP,
	})
	pl.pipeline = &pipeline{h: h, cs: clientStack(t, h.mem), ups: ups}
	return pl
}

func (pl *l7Pipeline) dialed(port uint16) int {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	return pl.dials[port]
}

// flowKey is the conntrack key of a client connection.
func flowKey(proto uint8, local, remote net.Addr) (k [2]netip.AddrPort) {
	ap := func(a net.Addr) netip.AddrPort {
		switch a := a.(type) {
		case *net.TCPAddr:
			return a.AddrPort()
		case *net.UDPAddr:
			return a.AddrPort()
		}
		return netip.AddrPort{}
	}
	return [2]netip.AddrPort{ap(local), ap(remote)}
}

func (pl *l7Pipeline) info(t *testing.T, proto uint8, local, remote net.Addr) (L7Info, bool) {
	t.Helper()
	k := flowKey(proto, local, remote)
	return pl.h.s.FlowL7(conntrack.KeyFrom(proto, netip.AddrPortFrom(k[0].Addr().Unmap(), k[0].Port()), netip.AddrPortFrom(k[1].Addr().Unmap(), k[1].Port())))
}

// isRST recognises a reset as gVisor's client endpoints report it.
func isRST(err error) bool { return err != nil && strings.Contains(err.Error(), "reset") }

func TestPendingSNI(t *testing.T) {
	pl := newL7Pipeline(t)
	for _, fam := range families() {
		t.Run(fam.name+"/blocked SNI resets without dialing", func(t *testing.T) {
			before := pl.dialed(portTLS)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := pl.dial(ctx, fam.srv, portTLS)
			if err != nil {
				t.Fatalf("dial: %v (a pending flow's handshake must complete)", err)
			}
			defer c.Close()
			local, remote := c.LocalAddr(), c.RemoteAddr()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			tc := tls.Client(c, &tls.Config{ServerName: "www.Blocked.example", InsecureSkipVerify: true})
			err = tc.Handshake()
			if !isRST(err) {
				t.Fatalf("handshake: err = %v, want a reset", err)
			}
			if n := pl.dialed(portTLS); n != before {
				t.Errorf("upstream dialed %d times for a refused SNI", n-before)
			}
			waitFor(t, "decision line", func() bool {
				return strings.Contains(pl.h.log.String(), `"sni":"www.blocked.example"`)
			})
			if log := pl.h.log.String(); !strings.Contains(log, `"rule":"block-sni","action":"reject"`) || !strings.Contains(log, `"reason":"l7"`) {
				t.Errorf("decision line lacks rule/action/reason:\n%s", log)
			}
			info, ok := pl.info(t, packet.ProtoTCP, local, remote)
			if !ok || info.SNI != "www.blocked.example" || info.Rule != "block-sni" || info.Action != "reject" {
				t.Errorf("FlowL7 = %+v, %v; want sni www.blocked.example by block-sni/reject", info, ok)
			}
		})
		t.Run(fam.name+"/allowed SNI is replayed upstream", func(t *testing.T) {
			before := pl.dialed(portTLS)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := pl.dial(ctx, fam.srv, portTLS)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			tc := tls.Client(c, &tls.Config{ServerName: "allowed.example", InsecureSkipVerify: true})
			// The echo server sends the ClientHello back, which fails the
			// handshake on the client; what matters is what went through.
			_ = tc.Handshake()
			c.Close()
			select {
			case rec := <-pl.ups.received:
				if len(rec) < 6 || rec[0] != 0x16 || !bytes.Contains(rec, []byte("allowed.example")) {
					t.Errorf("upstream received %d bytes (% x...), want the ClientHello", len(rec), rec[:min(len(rec), 8)])
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the upstream never saw the connection")
			}
			if n := pl.dialed(portTLS); n != before+1 {
				t.Errorf("upstream dialed %d times, want 1", n-before)
			}
		})
	}
}

func TestPendingServerFirstTimesOutThenRelays(t *testing.T) {
	pl := newL7Pipeline(t)
	c := pl.open(t, srv4, portGreeting)
	// The client waits for the server's greeting: the gateway's read of
	// the first client bytes can only end by [inspect] timeout.
	got := make([]byte, len(greeting))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("reading the greeting: %v", err)
	}
	if string(got) != greeting {
		t.Fatalf("greeting = %q", got)
	}
	if _, err := io.WriteString(c, "EHLO client\r\n"); err != nil {
		t.Fatal(err)
	}
	echo := make([]byte, len("EHLO client\r\n"))
	if _, err := io.ReadFull(c, echo); err != nil || string(echo) != "EHLO client\r\n" {
		t.Fatalf("echo after the greeting: %q, %v", echo, err)
	}
	if pl.dialed(portGreeting) != 1 {
		t.Errorf("dialed %d times, want 1", pl.dialed(portGreeting))
	}
}

const (
	okRequest      = "GET /a HTTP/1.1\r\nHost: ok.example\r\n\r\n"
	blockedRequest = "GET /b HTTP/1.1\r\nHost: blocked.example\r\n\r\n"
)

func TestHTTPPipelinedSecondRequestRefused(t *testing.T) {
	pl := newL7Pipeline(t)
	for _, tc := range []struct {
		name string
		port uint16
	}{{"403", portHTTP403}, {"reset", portHTTPReset}} {
		t.Run(tc.name+"/second request after the first was answered", func(t *testing.T) {
			c := pl.open(t, srv4, tc.port)
			local, remote := c.LocalAddr(), c.RemoteAddr()
			if _, err := io.WriteString(c, okRequest); err != nil {
				t.Fatal(err)
			}
			first := make([]byte, len(okRequest))
			if _, err := io.ReadFull(c, first); err != nil || string(first) != okRequest {
				t.Fatalf("first request's echo: %q, %v", first, err)
			}
			if _, err := io.WriteString(c, blockedRequest); err != nil {
				t.Fatal(err)
			}
			rest, err := io.ReadAll(c)
			// The server's side is half-closed before the refused request:
			// the echo server says "bye" as it would answer the requests
			// before it, then the gateway refuses.
			checkRefusal(t, tc.port, "bye", rest, err)
			select {
			case rec := <-pl.ups.received:
				if string(rec) != okRequest {
					t.Errorf("upstream received %q, want only the first request", rec)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("upstream connection did not end")
			}
			info, ok := pl.info(t, packet.ProtoTCP, local, remote)
			if !ok || info.HTTPHost != "blocked.example" || info.Action != "reject" {
				t.Errorf("FlowL7 = %+v, %v; want the refused host", info, ok)
			}
		})
		t.Run(tc.name+"/pipelined in one segment: the first is served", func(t *testing.T) {
			before := pl.dialed(tc.port)
			c := pl.open(t, srv4, tc.port)
			if _, err := io.WriteString(c, okRequest+blockedRequest+okRequest); err != nil {
				t.Fatal(err)
			}
			rest, err := io.ReadAll(c)
			checkRefusal(t, tc.port, okRequest+"bye", rest, err)
			if n := pl.dialed(tc.port); n != before+1 {
				t.Errorf("dialed %d times, want 1", n-before)
			}
			select {
			case rec := <-pl.ups.received:
				if string(rec) != okRequest {
					t.Errorf("upstream received %q, want only the first request", rec)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("upstream connection did not end")
			}
		})
		t.Run(tc.name+"/first request blocked", func(t *testing.T) {
			before := pl.dialed(tc.port)
			c := pl.open(t, srv4, tc.port)
			if _, err := io.WriteString(c, blockedRequest); err != nil {
				t.Fatal(err)
			}
			rest, err := io.ReadAll(c)
			checkRefusal(t, tc.port, "", rest, err)
			if n := pl.dialed(tc.port); n != before {
				t.Errorf("dialed %d times, want none", n-before)
			}
		})
	}
	t.Run("payload pattern in a later request resets", func(t *testing.T) {
		c := pl.open(t, srv4, portHTTP403)
		if _, err := io.WriteString(c, okRequest); err != nil {
			t.Fatal(err)
		}
		first := make([]byte, len(okRequest))
		if _, err := io.ReadFull(c, first); err != nil {
			t.Fatalf("first request's echo: %v", err)
		}
		_, _ = io.WriteString(c, "GET /EVIL HTTP/1.1\r\nHost: ok.example\r\n\r\n")
		if rest, err := io.ReadAll(c); !isRST(err) || len(rest) != 0 {
			t.Errorf("after the pattern: %q, %v; want a reset", rest, err)
		}
		select {
		case rec := <-pl.ups.received:
			if bytes.Contains(rec, []byte("EVIL")) {
				t.Errorf("upstream received the pattern: %q", rec)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("upstream connection did not end")
		}
	})
	if log := pl.h.log.String(); !strings.Contains(log, `"http_host":"blocked.example"`) {
		t.Errorf("no decision line with the host:\n%s", log)
	}
}

// checkRefusal checks what the client read after its refused request:
// served (the answers to the requests before it), then the 403 answer and
// EOF, or a reset.
func checkRefusal(t *testing.T, port uint16, served string, rest []byte, err error) {
	t.Helper()
	if port == portHTTP403 {
		if err != nil || string(rest) != served+policy.HTTP403Response {
			t.Errorf("after the blocked request: %q, %v; want %q, the 403 answer, then EOF", rest, err, served)
		}
		return
	}
	if !isRST(err) || (len(rest) != 0 && string(rest) != served) {
		t.Errorf("after the blocked request: %q, %v; want a reset (after %q at most)", rest, err, served)
	}
}

func dnsQuery(t testing.TB, id uint16, name string) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, RecursionDesired: true})
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

// checkNXDomain checks that resp answers query id for name with NXDOMAIN.
func checkNXDomain(t *testing.T, resp []byte, id uint16, name string) {
	t.Helper()
	var p dnsmessage.Parser
	h, err := p.Start(resp)
	if err != nil {
		t.Fatalf("answer does not parse: %v (% x)", err, resp)
	}
	q, err := p.Question()
	if err != nil {
		t.Fatalf("answer has no question: %v", err)
	}
	if !h.Response || h.ID != id || h.RCode != dnsmessage.RCodeNameError || q.Name.String() != name {
		t.Errorf("answer: response %v id %d rcode %v name %s; want an NXDOMAIN for id %d %s", h.Response, h.ID, h.RCode, q.Name, id, name)
	}
}

func TestDNSPerQuery(t *testing.T) {
	pl := newL7Pipeline(t)
	for _, fam := range families() {
		t.Run(fam.name, func(t *testing.T) {
			proto := ipv4.ProtocolNumber
			if fam.srv.Is6() {
				proto = ipv6.ProtocolNumber
			}
			c, err := gonet.DialUDP(pl.cs, nil, &tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFromSlice(fam.srv.AsSlice()), Port: portDNS}, proto)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			buf := make([]byte, 1500)
			exchange := func(msg []byte) ([]byte, error) {
				if _, err := c.Write(msg); err != nil {
					t.Fatal(err)
				}
				_ = c.SetReadDeadline(time.Now().Add(dnsAnswerDelay))
				n, err := c.Read(buf)
				return buf[:n], err
			}
			// Several queries on one flow, each decided on its own.
			allowed := dnsQuery(t, 0x1111, "www.allowed.example.")
			if got, err := exchange(allowed); err != nil || !bytes.Equal(got, allowed) {
				t.Fatalf("allowed query: %v; want it forwarded (the echo server returns it)", err)
			}
			got, err := exchange(dnsQuery(t, 0x2222, "WWW.Blocked.Example."))
			if err != nil {
				t.Fatalf("blocked query: %v, want an NXDOMAIN answer", err)
			}
			checkNXDomain(t, got, 0x2222, "WWW.Blocked.Example.")
			if got, err := exchange(dnsQuery(t, 0x3333, "dropped.example.")); err == nil {
				t.Fatalf("dropped query answered: % x", got)
			}
			// Not DNS: the name is absent, no dns rule matches, allow-l7 does.
			junk := []byte("not a dns message")
			if got, err := exchange(junk); err != nil || !bytes.Equal(got, junk) {
				t.Fatalf("non-DNS datagram: %q, %v; want it forwarded", got, err)
			}
			if got, err := exchange(allowed); err != nil || !bytes.Equal(got, allowed) {
				t.Fatalf("allowed query after the others: %v", err)
			}
			info, ok := pl.info(t, packet.ProtoUDP, c.LocalAddr(), c.RemoteAddr())
			if !ok || info.DNSQName != "dropped.example" || info.Rule != "drop-dropped" {
				t.Errorf("FlowL7 = %+v, %v; want the latest refused name", info, ok)
			}
		})
	}
	log := pl.h.log.String()
	for _, want := range []string{`"rule":"nx-blocked","action":"reject"`, `"dns_qname":"www.blocked.example"`, `"rule":"drop-dropped","action":"drop"`, `"reason":"dns"`} {
		if !strings.Contains(log, want) {
			t.Errorf("decision log lacks %s:\n%s", want, log)
		}
	}
}

func TestDNSOverTCP(t *testing.T) {
	pl := newL7Pipeline(t)
	c := pl.open(t, srv4, portDNS)
	frame := func(msg []byte) []byte {
		return append(binary.BigEndian.AppendUint16(nil, uint16(len(msg))), msg...)
	}
	readFrame := func() []byte {
		var l [2]byte
		if _, err := io.ReadFull(c, l[:]); err != nil {
			t.Fatalf("reading a frame: %v", err)
		}
		b := make([]byte, binary.BigEndian.Uint16(l[:]))
		if _, err := io.ReadFull(c, b); err != nil {
			t.Fatalf("reading a frame: %v", err)
		}
		return b
	}
	allowed := dnsQuery(t, 7, "a.allowed.example.")
	blocked := dnsQuery(t, 8, "x.blocked.example.")
	dropped := dnsQuery(t, 9, "dropped.example.")
	// One write, three messages, the last split in two writes: answered
	// in order, the dropped one skipped.
	all := append(append(frame(blocked), frame(dropped)...), frame(allowed)...)
	if _, err := c.Write(all[:len(all)-5]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if _, err := c.Write(all[len(all)-5:]); err != nil {
		t.Fatal(err)
	}
	checkNXDomain(t, readFrame(), 8, "x.blocked.example.")
	if got := readFrame(); !bytes.Equal(got, allowed) {
		t.Errorf("second answer % x, want the allowed query echoed", got)
	}
	_ = c.CloseWrite()
	rest, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("after half-close: %v", err)
	}
	if string(rest) != "bye" {
		// The echo server's "bye" is not a DNS frame: the framer holds it.
		if len(rest) != 0 {
			t.Errorf("after half-close: %q", rest)
		}
	}
	select {
	case rec := <-pl.ups.received:
		if !bytes.Equal(rec, frame(allowed)) {
			t.Errorf("upstream received % x, want only the allowed query", rec)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("upstream connection did not end")
	}
}
