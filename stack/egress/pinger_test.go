package egress

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tungate/tungate/internal/testenv"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// TestPingerWithoutSockets covers what fails before a socket is opened, so
// it runs without root.
func TestPingerWithoutSockets(t *testing.T) {
	p, err := NewPinger(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Echo(context.Background(), netip.Addr{}, 1, 1, nil, time.Second); err == nil {
		t.Error("echo to the zero address: got nil error")
	}
	if err := p.Close(); err != nil {
		t.Errorf("Close with no socket open: %v", err)
	}
	if _, err := p.Echo(context.Background(), netip.MustParseAddr("127.0.0.1"), 1, 1, nil, time.Second); !errors.Is(err, net.ErrClosed) {
		t.Errorf("echo after Close: got %v; want %v", err, net.ErrClosed)
	}
}

// TestPingerNetns pings lo's addresses from raw sockets bound to lo with a
// mark, in a fresh namespace.
func TestPingerNetns(t *testing.T) {
	ns := testNetns(t, silentNeighbour...)
	testenv.NoLeak(t)
	inNetns(t, ns, func() {
		ctx := context.Background()
		p, err := NewPinger(Config{Interface: "lo", Mark: 7321}, nil)
		if err != nil {
			t.Error(err)
			return
		}
		defer p.Close()
		for _, dst := range []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")} {
			payload := []byte("tungate echo to " + dst.String())
			reply, err := p.Echo(ctx, dst, 4242, 9, payload, 5*time.Second)
			if err != nil || !bytes.Equal(reply, payload) {
				t.Errorf("Echo %s: got %q, %v; want %q", dst, reply, err, payload)
			}
		}
		for name, f := range map[string]*pingFamily{"v4": p.v4, "v6": p.v6} {
			if f == nil {
				t.Errorf("%s socket not open", name)
				continue
			}
			if dev, mark := sockOpts(t, f.conn); dev != "lo" || mark != 7321 {
				t.Errorf("%s raw socket: got SO_BINDTODEVICE %q SO_MARK %d; want lo 7321", name, dev, mark)
			}
			checkEchoReplyFilter(t, f)
		}
		checkKernelChecksumsICMPv6(t, p.v6)

		// Many clients with the same identifier and sequence toward the same
		// destination each get their own reply.
		var wg sync.WaitGroup
		for i := range 16 {
			wg.Add(1)
			go func() { // ends when its Echo returns
				defer wg.Done()
				dst := netip.MustParseAddr("127.0.0.1")
				if i%2 == 1 {
					dst = netip.MustParseAddr("::1")
				}
				payload := fmt.Appendf(nil, "client %d", i)
				reply, err := p.Echo(ctx, dst, 7, 1, payload, 5*time.Second)
				if err != nil || !bytes.Equal(reply, payload) {
					t.Errorf("client %d: Echo %s: got %q, %v; want %q", i, dst, reply, err, payload)
				}
			}()
		}
		wg.Wait()
	})
}

// checkEchoReplyFilter reads back the ICMP filter of f's socket: only echo
// reply passes.
func checkEchoReplyFilter(t *testing.T, f *pingFamily) {
	t.Helper()
	rc, err := f.conn.SyscallConn()
	if err != nil {
		t.Error(err)
		return
	}
	rc.Control(func(fd uintptr) {
		if f.v6 {
			got, err := unix.GetsockoptICMPv6Filter(int(fd), unix.SOL_ICMPV6, unix.ICMPV6_FILTER)
			if err != nil {
				t.Errorf("ICMPV6_FILTER: %v", err)
				return
			}
			for typ := range 256 {
				blocked := got.Data[typ>>5]&(1<<(typ&31)) != 0
				if want := typ != int(ipv6.ICMPTypeEchoReply); blocked != want {
					t.Errorf("ICMPV6_FILTER type %d: got blocked=%v; want %v", typ, blocked, want)
				}
			}
			return
		}
		got, err := unix.GetsockoptInt(int(fd), unix.SOL_RAW, unix.ICMP_FILTER)
		if want := ^uint32(1 << ipv4.ICMPTypeEchoReply); err != nil || uint32(got) != want {
			t.Errorf("ICMP_FILTER: got %#x, %v; want %#x", uint32(got), err, want)
		}
	})
}

// checkKernelChecksumsICMPv6 confirms what marshalEchoRequest relies on:
// the kernel checksums ICMPv6 at offset 2 on this socket, and that cannot
// be turned off.
func checkKernelChecksumsICMPv6(t *testing.T, f *pingFamily) {
	t.Helper()
	if f == nil {
		return
	}
	rc, err := f.conn.SyscallConn()
	if err != nil {
		t.Error(err)
		return
	}
	rc.Control(func(fd uintptr) {
		if got, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_CHECKSUM); err != nil || got != 2 {
			t.Errorf("IPV6_CHECKSUM: got %d, %v; want offset 2", got, err)
		}
		if err := unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_CHECKSUM, -1); err == nil {
			t.Error("turning IPV6_CHECKSUM off on an ICMPv6 raw socket succeeded")
		}
	})
}

func TestPingerTimeoutCancelClose(t *testing.T) {
	ns := testNetns(t, silentNeighbour...)
	testenv.NoLeak(t)
	silent := netip.MustParseAddr("198.18.0.2")
	inNetns(t, ns, func() {
		p, err := NewPinger(Config{}, nil)
		if err != nil {
			t.Error(err)
			return
		}
		_, err = p.Echo(context.Background(), silent, 1, 1, []byte("x"), 200*time.Millisecond)
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("silent destination: got %v; want %v", err, os.ErrDeadlineExceeded)
		}

		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { _, err := p.Echo(ctx, silent, 1, 2, nil, 0); errc <- err }() // ends at cancel
		waitPending(t, p.v4, 1)
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled echo: got %v; want %v", err, context.Canceled)
		}

		go func() { _, err := p.Echo(context.Background(), silent, 1, 3, nil, 0); errc <- err }() // ends at Close
		waitPending(t, p.v4, 1)
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := <-errc; !errors.Is(err, net.ErrClosed) {
			t.Errorf("echo pending at Close: got %v; want %v", err, net.ErrClosed)
		}
		if err := p.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if _, err := p.Echo(context.Background(), silent, 1, 4, nil, time.Second); !errors.Is(err, net.ErrClosed) {
			t.Errorf("echo after Close: got %v; want %v", err, net.ErrClosed)
		}
	})
}

// TestPingerUnreachable checks that a destination without a route fails at
// once with the kernel's error instead of waiting out the timeout.
func TestPingerUnreachable(t *testing.T) {
	ns := testNetns(t)
	inNetns(t, ns, func() {
		p, err := NewPinger(Config{}, nil)
		if err != nil {
			t.Error(err)
			return
		}
		defer p.Close()
		start := time.Now()
		_, err = p.Echo(context.Background(), netip.MustParseAddr("198.19.0.1"), 1, 1, nil, 5*time.Second)
		if !errors.Is(err, syscall.ENETUNREACH) || time.Since(start) > 2*time.Second {
			t.Errorf("unroutable destination: got %v after %v; want %v at once", err, time.Since(start), syscall.ENETUNREACH)
		}
	})
}

// waitPending waits until n echoes are registered on f and returns one of
// their identifiers.
func waitPending(t *testing.T, f *pingFamily, n int) uint16 {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		f.mu.Lock()
		k := len(f.waiters)
		var id uint16
		for id = range f.waiters {
			break
		}
		f.mu.Unlock()
		if k >= n {
			return id
		}
	}
	t.Errorf("echo never became pending")
	return 0
}
