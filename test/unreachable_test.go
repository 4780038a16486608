package test

import (
	"context"
	"errors"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/tungate/tungate/internal/lab"
)

// TestDialUnreachableHost connects, through the gateway, to an address of
// the server network where no host answers. Without a gateway the
// client's router would report the host unreachable; the gateway must do
// the same as soon as its own dial fails, not leave the client to time
// out.
//
// IPv4 only: an upstream socket bound to the egress interface
// (SO_BINDTODEVICE) never hears of the kernel's own ICMPv6 address
// unreachable (it arrives on lo), so an IPv6 dial ends in the dial timeout
// and the client in its own; see the issue notes.
func TestDialUnreachableHost(t *testing.T) {
	l := newLab(t)
	startGateway(t, l, gatewayConfig(t, allowTCPRule("to-nowhere", 80)))
	for _, dst := range []netip.Addr{netip.MustParseAddr("198.18.2.99")} {
		if !lab.ServerNetV4.Contains(dst) {
			t.Fatalf("%v is outside the server network", dst)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		start := time.Now()
		c, err := l.Client.Dial(ctx, "tcp", netip.AddrPortFrom(dst, 80).String())
		cancel()
		took := time.Since(start)
		if err == nil {
			c.Close()
			t.Fatalf("%v: connected to an address with no host", dst)
		}
		if !errors.Is(err, syscall.EHOSTUNREACH) {
			t.Errorf("%v: dial error %v after %v; want no route to host (EHOSTUNREACH)", dst, err, took.Round(time.Millisecond))
			continue
		}
		t.Logf("%v: %v after %v", dst, err, took.Round(time.Millisecond))
	}
}

// TestUDPPortUnreachableFromServer sends UDP through the gateway to a
// server port nobody listens on: the server's port unreachable reaches
// the client as an error about its own datagram, from the server's
// address, so a connected socket's next call fails with ECONNREFUSED, as
// without a gateway. Both families.
func TestUDPPortUnreachableFromServer(t *testing.T) {
	l := newLab(t)
	startGateway(t, l, gatewayConfig(t, `
[[rule]]
name     = "udp-closed"
proto    = "udp"
dst_port = 7441
action   = "allow"
`))
	for _, dst := range []netip.Addr{lab.ServerV4, lab.ServerV6} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := l.Client.Dial(ctx, "udp", netip.AddrPortFrom(dst, 7441).String())
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		refused := false
		buf := make([]byte, 64)
		for i := 0; i < 20 && !refused; i++ {
			if _, err := c.Write([]byte("anyone there?")); errors.Is(err, syscall.ECONNREFUSED) {
				refused = true
				break
			}
			_ = c.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
			if _, err := c.Read(buf); errors.Is(err, syscall.ECONNREFUSED) {
				refused = true
			}
		}
		c.Close()
		if !refused {
			t.Errorf("%v: no ECONNREFUSED: the server's port unreachable did not reach the client", dst)
		}
	}
}
