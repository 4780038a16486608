package relay

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tungate/tungate/internal/testenv"
)

// udpEnv is client app <-> [client conn | UDP | upstream conn] <-> echo server.
type udpEnv struct {
	app       *net.UDPConn   // the client application's socket
	relay     *net.UDPConn   // UDP's client side, connected to app
	relayAddr netip.AddrPort // where app sends to
	result    chan Stats
	cancel    context.CancelFunc
}

// startUDP runs UDP toward an echo server, in a goroutine that ends when
// UDP returns. The echo server and the test's own calls use the AddrPort
// forms, which do not allocate, so the allocation guard counts only UDP.
func startUDP(t testing.TB, idle time.Duration) *udpEnv {
	t.Helper()
	lo := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}
	echo, err := net.ListenUDP("udp4", lo)
	if err != nil {
		t.Fatal(err)
	}
	echoDone := make(chan struct{})
	go func() { // ends when the test's cleanup closes echo
		defer close(echoDone)
		buf := make([]byte, 65535)
		for {
			n, from, err := echo.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			echo.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	app, err := net.ListenUDP("udp4", lo)
	if err != nil {
		t.Fatal(err)
	}
	relay, err := net.DialUDP("udp4", lo, app.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	up, err := net.DialUDP("udp4", nil, echo.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &udpEnv{
		app: app, relay: relay, relayAddr: relay.LocalAddr().(*net.UDPAddr).AddrPort(),
		result: make(chan Stats, 1), cancel: cancel,
	}
	t.Cleanup(func() {
		cancel()
		app.Close()
		echo.Close()
		<-echoDone
	})
	go func() { e.result <- UDP(ctx, relay, up, idle, nil) }()
	return e
}

// roundTrip sends msg through the relay and reads the echo into buf.
func (e *udpEnv) roundTrip(t testing.TB, msg, buf []byte) []byte {
	t.Helper()
	if _, err := e.app.WriteToUDPAddrPort(msg, e.relayAddr); err != nil {
		t.Fatal(err)
	}
	n, err := e.app.Read(buf)
	if err != nil {
		t.Fatalf("echo: got %v; want a datagram", err)
	}
	return buf[:n]
}

func (e *udpEnv) wait(t testing.TB) Stats {
	t.Helper()
	select {
	case st := <-e.result:
		return st
	case <-time.After(30 * time.Second): // liveness guard, not a timing assertion
		t.Fatal("UDP did not return")
		return Stats{}
	}
}

func TestUDPEchoAndIdle(t *testing.T) {
	testenv.NoLeak(t)
	e := startUDP(t, 300*time.Millisecond)
	e.app.SetReadDeadline(time.Now().Add(10 * time.Second))
	sizes := []int{1, 0, 1400, 9000, 65507}
	buf := make([]byte, 65535)
	var total int64
	for i, n := range sizes {
		msg := bytes.Repeat([]byte{byte('a' + i)}, n)
		if got := e.roundTrip(t, msg, buf); !bytes.Equal(got, msg) {
			t.Fatalf("datagram %d: got %d bytes back; want the %d sent, unchanged", i, len(got), n)
		}
		total += int64(n)
	}
	// Nothing more is sent: the idle timeout must end the relay by itself.
	st := e.wait(t)
	if st.Err != nil {
		t.Errorf("Err: got %v; want nil, an idle end is clean", st.Err)
	}
	if st.PacketsToServer != int64(len(sizes)) || st.PacketsToClient != int64(len(sizes)) {
		t.Errorf("packets to server/client: got %d/%d; want %d each way", st.PacketsToServer, st.PacketsToClient, len(sizes))
	}
	if st.BytesToServer != total || st.BytesToClient != total {
		t.Errorf("bytes to server/client: got %d/%d; want %d each way", st.BytesToServer, st.BytesToClient, total)
	}
	// UDP closed its sockets: its client side is gone.
	if _, err := e.relay.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("write on the client side after the idle end: got %v; want net.ErrClosed", err)
	}
}

// Traffic keeps the flow alive past several idle periods; only silence ends it.
func TestUDPTrafficRefreshesIdle(t *testing.T) {
	testenv.NoLeak(t)
	idle := time.Second
	e := startUDP(t, idle)
	buf := make([]byte, 64)
	start := time.Now()
	for time.Since(start) < 3*idle {
		e.app.SetReadDeadline(time.Now().Add(10 * time.Second))
		e.roundTrip(t, []byte("keepalive"), buf)
		select {
		case st := <-e.result:
			t.Fatalf("UDP returned during traffic: got %+v; want it running", st)
		default:
		}
		time.Sleep(idle / 20)
	}
	if st := e.wait(t); st.Err != nil {
		t.Errorf("Err: got %v; want nil, an idle end is clean", st.Err)
	}
}

func TestUDPCancel(t *testing.T) {
	testenv.NoLeak(t)
	e := startUDP(t, time.Hour)
	e.app.SetReadDeadline(time.Now().Add(10 * time.Second))
	e.roundTrip(t, []byte("hello"), make([]byte, 64))
	e.cancel()
	if st := e.wait(t); !errors.Is(st.Err, context.Canceled) {
		t.Errorf("Err: got %v; want context.Canceled", st.Err)
	}
}

// TestUDPNoAllocs guards the datagram loop: relaying a datagram each way
// must not allocate. Allocations are counted process-wide, so the echo
// server and the test's own I/O avoid allocating too.
func TestUDPNoAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	if raceEnabled {
		t.Skip("the datagram buffers come from sync.Pool, which the race detector empties at random; the guard runs without -race")
	}
	e := startUDP(t, time.Hour)
	e.app.SetReadDeadline(time.Now().Add(time.Minute))
	msg := make([]byte, 1400)
	buf := make([]byte, 2048)
	step := func() { e.roundTrip(t, msg, buf) }
	step() // the pumps have taken their buffers and set their deadlines
	if a := testing.AllocsPerRun(200, step); a != 0 {
		t.Errorf("allocations per relayed round trip: got %v; want 0", a)
	}
}

func BenchmarkUDP(b *testing.B) {
	e := startUDP(b, time.Hour)
	e.app.SetReadDeadline(time.Now().Add(time.Hour))
	msg := make([]byte, 1400)
	buf := make([]byte, 2048)
	b.SetBytes(2 * int64(len(msg)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		e.roundTrip(b, msg, buf)
	}
}

// refusalCount counts OnRefused calls.
type refusalCount struct{ n atomic.Int32 }

func (r *refusalCount) OnRefused() { r.n.Add(1) }

// TestUDPRefusedReported: datagrams to an upstream port nobody listens on
// come back as ICMP port unreachable; the relay reports each refusal and
// goes on relaying.
func TestUDPRefusedReported(t *testing.T) {
	lo := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}
	closed, err := net.ListenUDP("udp4", lo)
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.LocalAddr().(*net.UDPAddr)
	closed.Close()
	app, err := net.ListenUDP("udp4", lo)
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	client, err := net.DialUDP("udp4", lo, app.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	up, err := net.DialUDP("udp4", nil, closedAddr)
	if err != nil {
		t.Fatal(err)
	}
	var refused refusalCount
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan Stats, 1)
	go func() { done <- UDP(ctx, client, up, time.Hour, &refused) }()
	deadline := time.Now().Add(5 * time.Second)
	for refused.n.Load() == 0 && time.Now().Before(deadline) {
		if _, err := app.WriteToUDP([]byte("anyone?"), client.LocalAddr().(*net.UDPAddr)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	st := <-done
	if refused.n.Load() == 0 {
		t.Fatalf("no refusal reported; stats %+v", st)
	}
	if st.Err != nil && !errors.Is(st.Err, context.Canceled) {
		t.Errorf("the relay ended with %v; refusals must not end it", st.Err)
	}
}
