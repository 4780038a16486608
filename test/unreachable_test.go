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
