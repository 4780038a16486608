package stack

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/tungate/tungate/internal/units"
	"golang.org/x/sys/unix"
)

func closedPort(t *testing.T, network, addr string) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort(ln.Addr().String())
	ln.Close()
	return ap
}

func TestIsRefused(t *testing.T) {
	dst := closedPort(t, "tcp4", "127.0.0.1:0")
	_, err := NewDialer(EgressConfig{}).DialTCP(context.Background(), dst)
	if err == nil {
		t.Fatal("dial to a closed port succeeded")
	}
	if !IsRefused(err) {
		t.Errorf("IsRefused(%v) = false", err)
	}
	for _, e := range []error{nil, context.DeadlineExceeded, syscall.ENETUNREACH, syscall.EHOSTUNREACH} {
		if IsRefused(e) {
			t.Errorf("IsRefused(%v) = true", e)
		}
	}
}

func TestDialerConnects(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Write([]byte("hi"))
			c.Close()
		}
	}()
	d := NewDialer(EgressConfig{})
	// A v4-mapped destination must still leave as IPv4.
	dst := netip.MustParseAddrPort(ln.Addr().String())
	mapped := netip.AddrPortFrom(netip.AddrFrom16(dst.Addr().As16()), dst.Port())
	c, err := d.DialTCP(context.Background(), mapped)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 2)
	if _, err := c.Read(buf); err != nil || string(buf) != "hi" {
		t.Errorf("read %q, %v", buf, err)
	}
	u, err := d.DialUDP(context.Background(), dst)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if got := u.RemoteAddr().String(); got != dst.String() {
		t.Errorf("UDP remote %s, want %s", got, dst)
	}
}

func sockOpts(t *testing.T, c syscall.Conn) (dev string, mark int) {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Error(err)
		return "", 0
	}
	var devErr, markErr error
	rc.Control(func(fd uintptr) {
		dev, devErr = unix.GetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE)
		mark, markErr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK)
	})
	if devErr != nil || markErr != nil {
		t.Errorf("getsockopt: %v, %v", devErr, markErr)
	}
	return dev, mark
}

// TestDialerNetns checks the egress socket options and the error classes in
// a namespace with only lo and a silent neighbour.
func TestDialerNetns(t *testing.T) {
	ns := testNetns(t, silentNeighbour...)
	inNetns(t, ns, func() {
		ctx := context.Background()
		bound := NewDialer(EgressConfig{Interface: "lo", Mark: 7321})
		for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				t.Errorf("listen %s: %v", addr, err)
				continue
			}
			defer ln.Close()
			dst := netip.MustParseAddrPort(ln.Addr().String())
			c, err := bound.DialTCP(ctx, dst)
			if err != nil {
				t.Errorf("DialTCP %s: %v", dst, err)
				continue
			}
			if dev, mark := sockOpts(t, c); dev != "lo" || mark != 7321 {
				t.Errorf("TCP %s: SO_BINDTODEVICE %q SO_MARK %d, want lo 7321", dst, dev, mark)
			}
			c.Close()
			u, err := bound.DialUDP(ctx, dst)
			if err != nil {
				t.Errorf("DialUDP %s: %v", dst, err)
				continue
			}
			if dev, mark := sockOpts(t, u); dev != "lo" || mark != 7321 {
				t.Errorf("UDP %s: SO_BINDTODEVICE %q SO_MARK %d, want lo 7321", dst, dev, mark)
			}
			u.Close()
		}

		if _, err := bound.DialTCP(ctx, closedPort(t, "tcp4", "127.0.0.1:0")); !IsRefused(err) {
			t.Errorf("closed port through bound dialer: %v, want refused", err)
		}

		quick := NewDialer(EgressConfig{DialTimeout: units.Duration(300 * time.Millisecond)})
		_, err := quick.DialTCP(ctx, netip.MustParseAddrPort("198.18.0.2:80"))
		if err == nil || IsRefused(err) || !isTimeout(err) {
			t.Errorf("silent destination: %v, want a timeout that is not refused", err)
		}
		_, err = quick.DialTCP(ctx, netip.MustParseAddrPort("198.19.0.1:80"))
		if err == nil || IsRefused(err) || !errors.Is(err, syscall.ENETUNREACH) {
			t.Errorf("unroutable destination: %v, want unreachable, not refused", err)
		}
	})
}
