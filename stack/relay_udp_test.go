package stack

import (
	"bytes"
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

// udpEnv is client app <-> [relay client conn | relay | upstream conn] <-> echo server.
type udpEnv struct {
	app    *net.UDPConn // the client application's socket
	relay  *net.UDPConn // relay's client side, connected to app
	result chan RelayStats
	cancel context.CancelFunc
}

func startUDPRelay(t *testing.T, idle time.Duration) *udpEnv {
	t.Helper()
	lo := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}
	echo, err := net.ListenUDP("udp4", lo)
	if err != nil {
		t.Fatal(err)
	}
	echoDone := make(chan struct{})
	go func() { // ends when the test closes echo
		defer close(echoDone)
		buf := make([]byte, 65535)
		for {
			n, from, err := echo.ReadFromUDP(buf)
			if err != nil {
				return
			}
			echo.WriteToUDP(buf[:n], from)
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
	e := &udpEnv{app: app, relay: relay, result: make(chan RelayStats, 1), cancel: cancel}
	t.Cleanup(func() {
		cancel()
		app.Close()
		echo.Close()
		<-echoDone
	})
	go func() { e.result <- relayUDP(ctx, relay, up, idle) }()
	return e
}

func (e *udpEnv) roundTrip(t *testing.T, msg []byte) []byte {
	t.Helper()
	if _, err := e.app.WriteToUDP(msg, e.relay.LocalAddr().(*net.UDPAddr)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65535)
	e.app.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := e.app.Read(buf)
	if err != nil {
		t.Fatalf("no echo: %v", err)
	}
	return buf[:n]
}

func (e *udpEnv) wait(t *testing.T) RelayStats {
	t.Helper()
	select {
	case st := <-e.result:
		return st
	case <-time.After(30 * time.Second): // liveness guard
		t.Fatal("UDP relay did not return")
		return RelayStats{}
	}
}

func TestRelayUDPEchoAndIdle(t *testing.T) {
	noLeak(t)
	e := startUDPRelay(t, 300*time.Millisecond)
	sizes := []int{1, 0, 1400, 9000, 65507}
	var total int64
	for i, n := range sizes {
		msg := bytes.Repeat([]byte{byte('a' + i)}, n)
		if got := e.roundTrip(t, msg); !bytes.Equal(got, msg) {
			t.Fatalf("datagram %d: sent %d bytes, got %d back (boundaries or content changed)", i, n, len(got))
		}
		total += int64(n)
	}
	// Nothing more is sent: the idle timeout must end the relay by itself.
	st := e.wait(t)
	if st.Err != nil {
		t.Errorf("idle end should be clean, got %v", st.Err)
	}
	if st.PacketsToServer != int64(len(sizes)) || st.PacketsToClient != int64(len(sizes)) {
		t.Errorf("packets %d/%d, want %d each way", st.PacketsToServer, st.PacketsToClient, len(sizes))
	}
	if st.BytesToServer != total || st.BytesToClient != total {
		t.Errorf("bytes %d/%d, want %d each way", st.BytesToServer, st.BytesToClient, total)
	}
	// The relay closed its sockets: its client side is gone.
	if _, err := e.relay.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("relay client conn still open after idle end: %v", err)
	}
}

// Traffic keeps the flow alive past several idle periods; only silence ends it.
func TestRelayUDPTrafficRefreshesIdle(t *testing.T) {
	noLeak(t)
	idle := time.Second
	e := startUDPRelay(t, idle)
	start := time.Now()
	for time.Since(start) < 3*idle {
		e.roundTrip(t, []byte("keepalive"))
		select {
		case st := <-e.result:
			t.Fatalf("relay ended during traffic: %+v", st)
		default:
		}
		time.Sleep(idle / 20)
	}
	if st := e.wait(t); st.Err != nil {
		t.Errorf("idle end should be clean, got %v", st.Err)
	}
}

func TestRelayUDPCancel(t *testing.T) {
	noLeak(t)
	e := startUDPRelay(t, time.Hour)
	e.roundTrip(t, []byte("hello"))
	e.cancel()
	if st := e.wait(t); !errors.Is(st.Err, context.Canceled) {
		t.Errorf("Err = %v, want context.Canceled", st.Err)
	}
}
