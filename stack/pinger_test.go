package stack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"
)

func TestAppendEchoV4Checksum(t *testing.T) {
	// Worked by hand: words 0x0800 + 0x0001 + 0x0001 = 0x0802, complement 0xf7fd.
	got := appendEcho(nil, false, 1, 1, nil)
	want := []byte{8, 0, 0xf7, 0xfd, 0, 1, 0, 1}
	if !bytes.Equal(got, want) {
		t.Fatalf("appendEcho = % x, want % x", got, want)
	}
	for _, n := range []int{0, 1, 7, 56, 1472} {
		msg := appendEcho([]byte{0xaa}, false, 0xbeef, uint16(n), bytes.Repeat([]byte{0x5c}, n))[1:]
		if c := icmpChecksum(msg); c != 0 {
			t.Errorf("payload %d: checksum over the message is %#x, want 0", n, c)
		}
	}
	if v6 := appendEcho(nil, true, 1, 1, []byte("x")); v6[0] != icmpv6EchoRequest || v6[2] != 0 || v6[3] != 0 {
		t.Errorf("v6 echo % x: want type 128 and a zero checksum for the kernel to fill", v6)
	}
}

func TestParseEcho(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		msg := appendEcho(nil, v6, 0x1234, 0x5678, []byte("payload"))
		m, ok := parseEcho(msg, v6)
		if !ok || m.id != 0x1234 || m.seq != 0x5678 || string(m.payload) != "payload" || m.typ != msg[0] {
			t.Errorf("v6=%v: parseEcho = %+v, %v", v6, m, ok)
		}
		if _, ok := parseEcho(msg, !v6); ok {
			t.Errorf("v6=%v: echo request parsed as the other family", v6)
		}
		msg[1] = 3
		if _, ok := parseEcho(msg, v6); ok {
			t.Errorf("v6=%v: non-zero code accepted", v6)
		}
	}
	if _, ok := parseEcho([]byte{0, 0, 0, 0, 0, 0, 0}, false); ok {
		t.Error("7-byte message accepted")
	}
	if _, ok := parseEcho([]byte{3, 3, 0, 0, 0, 0, 0, 0}, false); ok {
		t.Error("port unreachable accepted as echo")
	}
}

func FuzzParseEcho(f *testing.F) {
	f.Add(appendEcho(nil, false, 1, 2, []byte("abc")), false)
	f.Add(appendEcho(nil, true, 1, 2, []byte("abc")), true)
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0}, false)
	f.Fuzz(func(t *testing.T, b []byte, v6 bool) {
		m, ok := parseEcho(b, v6)
		if !ok {
			return
		}
		if len(b) < icmpEchoHeaderLen || !bytes.Equal(m.payload, b[icmpEchoHeaderLen:]) {
			t.Fatalf("payload does not alias the message body")
		}
		// Re-encoding as a request keeps identifier, sequence and payload.
		re, ok := parseEcho(appendEcho(nil, v6, m.id, m.seq, m.payload), v6)
		if !ok || re.id != m.id || re.seq != m.seq || !bytes.Equal(re.payload, m.payload) {
			t.Fatalf("round trip changed %+v into %+v (ok=%v)", m, re, ok)
		}
	})
}

// TestPingerNetns pings lo's addresses from raw sockets bound to lo with a
// mark, in a fresh namespace.
func TestPingerNetns(t *testing.T) {
	ns := testNetns(t, silentNeighbour...)
	noLeak(t)
	inNetns(t, ns, func() {
		ctx := context.Background()
		p, err := NewPinger(EgressConfig{Interface: "lo", Mark: 7321}, nil)
		if err != nil {
			t.Error(err)
			return
		}
		defer p.Close()
		for _, dst := range []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")} {
			payload := []byte("tungate echo to " + dst.String())
			reply, err := p.Echo(ctx, dst, 4242, 9, payload, 5*time.Second)
			if err != nil || !bytes.Equal(reply, payload) {
				t.Errorf("Echo %s = %q, %v; want %q", dst, reply, err, payload)
			}
		}
		for name, f := range map[string]*pingFamily{"v4": p.v4, "v6": p.v6} {
			if f == nil {
				t.Errorf("%s socket not open", name)
				continue
			}
			if dev, mark := sockOpts(t, f.conn); dev != "lo" || mark != 7321 {
				t.Errorf("%s raw socket: SO_BINDTODEVICE %q SO_MARK %d, want lo 7321", name, dev, mark)
			}
		}

		// Many clients with the same identifier and sequence toward the same
		// destination each get their own reply.
		var wg sync.WaitGroup
		for i := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				dst := netip.MustParseAddr("127.0.0.1")
				if i%2 == 1 {
					dst = netip.MustParseAddr("::1")
				}
				payload := fmt.Appendf(nil, "client %d", i)
				reply, err := p.Echo(ctx, dst, 7, 1, payload, 5*time.Second)
				if err != nil || !bytes.Equal(reply, payload) {
					t.Errorf("client %d: Echo %s = %q, %v", i, dst, reply, err)
				}
			}()
		}
		wg.Wait()
	})
}

func TestPingerTimeoutCancelClose(t *testing.T) {
	ns := testNetns(t, silentNeighbour...)
	noLeak(t)
	silent := netip.MustParseAddr("198.18.0.2")
	inNetns(t, ns, func() {
		p, err := NewPinger(EgressConfig{}, nil)
		if err != nil {
			t.Error(err)
			return
		}
		_, err = p.Echo(context.Background(), silent, 1, 1, []byte("x"), 200*time.Millisecond)
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("silent destination: %v, want deadline exceeded", err)
		}

		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { _, err := p.Echo(ctx, silent, 1, 2, nil, 0); errc <- err }()
		waitPending(t, p.v4, 1)
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled echo: %v", err)
		}

		go func() { _, err := p.Echo(context.Background(), silent, 1, 3, nil, 0); errc <- err }()
		waitPending(t, p.v4, 1)
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := <-errc; !errors.Is(err, net.ErrClosed) {
			t.Errorf("echo pending at Close: %v, want net.ErrClosed", err)
		}
		if err := p.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if _, err := p.Echo(context.Background(), silent, 1, 4, nil, time.Second); !errors.Is(err, net.ErrClosed) {
			t.Errorf("echo after Close: %v, want net.ErrClosed", err)
		}
	})
}

// waitPending waits until n echoes are registered on f.
func waitPending(t *testing.T, f *pingFamily, n int) {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		f.mu.Lock()
		k := len(f.waiters)
		f.mu.Unlock()
		if k >= n {
			return
		}
	}
	t.Errorf("echo never became pending")
}
