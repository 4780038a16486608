package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/tungate/tungate/internal/units"
)

func TestIsUnreachable(t *testing.T) {
	for _, tc := range []struct {
		err         error
		noRoute, ok bool
	}{
		{&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.EHOSTUNREACH)}, false, true},
		{&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ENETUNREACH)}, true, true},
		{&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, false, false},
		{context.DeadlineExceeded, false, false},
	} {
		if noRoute, ok := IsUnreachable(tc.err); noRoute != tc.noRoute || ok != tc.ok {
			t.Errorf("IsUnreachable(%v) = %v, %v; want %v, %v", tc.err, noRoute, ok, tc.noRoute, tc.ok)
		}
	}
}

func TestIsRefused(t *testing.T) {
	dst := closedPort(t, "tcp4", "127.0.0.1:0")
	_, dialErr := NewDialer(Config{}).DialTCP(context.Background(), dst)
	if dialErr == nil {
		t.Fatal("dial to a closed port succeeded")
	}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"dial to a closed port", dialErr, true},
		{"ECONNREFUSED wrapped", fmt.Errorf("read: %w", syscall.ECONNREFUSED), true},
		{"nil", nil, false},
		{"context deadline", context.DeadlineExceeded, false},
		{"i/o timeout", os.ErrDeadlineExceeded, false},
		{"network unreachable", syscall.ENETUNREACH, false},
		{"host unreachable", syscall.EHOSTUNREACH, false},
		{"reset", syscall.ECONNRESET, false},
	}
	for _, tc := range tests {
		if got := IsRefused(tc.err); got != tc.want {
			t.Errorf("%s: IsRefused(%v): got %v; want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

func TestNetworkFor(t *testing.T) {
	tests := []struct {
		dst  string
		want string
	}{
		{"192.0.2.1:80", "tcp4"},
		{"[::ffff:192.0.2.1]:80", "tcp4"},
		{"[2001:db8::1]:80", "tcp6"},
		{"[fe80::1%lo]:80", "tcp6"},
	}
	for _, tc := range tests {
		if got := networkFor("tcp", netip.MustParseAddrPort(tc.dst)); got != tc.want {
			t.Errorf("networkFor(tcp, %s): got %s; want %s", tc.dst, got, tc.want)
		}
	}
}

func TestNewDialerTimeout(t *testing.T) {
	tests := []struct {
		cfg  units.Duration
		want time.Duration
	}{
		{0, defaultDialTimeout},
		{units.Duration(-time.Second), defaultDialTimeout},
		{units.Duration(300 * time.Millisecond), 300 * time.Millisecond},
	}
	for _, tc := range tests {
		if got := NewDialer(Config{DialTimeout: tc.cfg}).d.Timeout; got != tc.want {
			t.Errorf("dial_timeout %v: got %v; want %v", tc.cfg, got, tc.want)
		}
	}
	if NewDialer(Config{}).d.Control != nil {
		t.Error("a dialer without interface or mark installs a socket hook")
	}
}

func TestDialerConnects(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // ends after one connection, or when ln closes
		if c, err := ln.Accept(); err == nil {
			c.Write([]byte("hi"))
			c.Close()
		}
	}()
	d := NewDialer(Config{})
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
		t.Errorf("read: got %q, %v; want \"hi\"", buf, err)
	}
	u, err := d.DialUDP(context.Background(), dst)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if got, want := u.RemoteAddr().String(), dst.String(); got != want {
		t.Errorf("UDP remote: got %s; want %s", got, want)
	}
}

// TestDialerNetns checks the egress socket options and the error classes in
// a namespace with only lo and a silent neighbour.
func TestDialerNetns(t *testing.T) {
	ns := testNetns(t, silentNeighbour...)
	inNetns(t, ns, func() {
		ctx := context.Background()
		bound := NewDialer(Config{Interface: "lo", Mark: 7321})
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
				t.Errorf("TCP %s: got SO_BINDTODEVICE %q SO_MARK %d; want lo 7321", dst, dev, mark)
			}
			c.Close()
			u, err := bound.DialUDP(ctx, dst)
			if err != nil {
				t.Errorf("DialUDP %s: %v", dst, err)
				continue
			}
			if dev, mark := sockOpts(t, u); dev != "lo" || mark != 7321 {
				t.Errorf("UDP %s: got SO_BINDTODEVICE %q SO_MARK %d; want lo 7321", dst, dev, mark)
			}
			u.Close()
		}

		if _, err := bound.DialTCP(ctx, closedPort(t, "tcp4", "127.0.0.1:0")); !IsRefused(err) {
			t.Errorf("closed port through bound dialer: got %v; want refused", err)
		}
		if _, err := NewDialer(Config{Interface: "no-such-if0"}).DialTCP(ctx, closedPort(t, "tcp4", "127.0.0.1:0")); err == nil || IsRefused(err) {
			t.Errorf("missing egress interface: got %v; want a SO_BINDTODEVICE error", err)
		}

		quick := NewDialer(Config{DialTimeout: units.Duration(300 * time.Millisecond)})
		_, err := quick.DialTCP(ctx, netip.MustParseAddrPort("198.18.0.2:80"))
		if err == nil || IsRefused(err) || !isTimeout(err) {
			t.Errorf("silent destination: got %v; want a timeout that is not refused", err)
		}
		_, err = quick.DialTCP(ctx, netip.MustParseAddrPort("198.19.0.1:80"))
		if err == nil || IsRefused(err) || !errors.Is(err, syscall.ENETUNREACH) {
			t.Errorf("unroutable destination: got %v; want unreachable, not refused", err)
		}
	})
}
