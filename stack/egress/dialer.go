package egress

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"syscall"
)

// Dialer opens upstream sockets toward real destinations through the egress
// interface. It is safe for concurrent use.
type Dialer struct {
	d net.Dialer
}

// NewDialer returns a Dialer whose sockets carry SO_BINDTODEVICE (when
// cfg.Interface is set) and SO_MARK (when cfg.Mark is non-zero), so they
// leave through the egress interface and never loop back into the TUN. A
// cfg.DialTimeout of zero or less means the default of Config.Defaults.
func NewDialer(cfg Config) *Dialer {
	timeout := cfg.DialTimeout.D()
	if timeout <= 0 {
		timeout = defaultDialTimeout
	}
	return &Dialer{d: net.Dialer{
		Timeout: timeout,
		Control: egressControl(cfg.Interface, cfg.Mark),
	}}
}

// DialTCP connects to dst. Use IsRefused on the error to tell an active
// refusal (answer the client with a RST) from a timeout or unreachable
// destination (let the client time out).
func (d *Dialer) DialTCP(ctx context.Context, dst netip.AddrPort) (*net.TCPConn, error) {
	c, err := d.d.DialContext(ctx, networkFor("tcp", dst), dst.String())
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// DialUDP returns a UDP socket connected to dst, so the kernel filters
// replies from anyone else.
func (d *Dialer) DialUDP(ctx context.Context, dst netip.AddrPort) (*net.UDPConn, error) {
	c, err := d.d.DialContext(ctx, networkFor("udp", dst), dst.String())
	if err != nil {
		return nil, err
	}
	return c.(*net.UDPConn), nil
}

// IsRefused reports whether err means the destination actively refused the
// connection (TCP RST to our SYN, or ICMP port unreachable on a connected
// UDP socket).
func IsRefused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED)
}

// IsUnreachable reports whether err means the destination could not be
// reached at all: the kernel got an ICMP host or network unreachable, or
// found no neighbour or no route (EHOSTUNREACH, ENETUNREACH). noRoute
// tells the second kind.
func IsUnreachable(err error) (noRoute, ok bool) {
	switch {
	case errors.Is(err, syscall.ENETUNREACH):
		return true, true
	case errors.Is(err, syscall.EHOSTUNREACH):
		return false, true
	}
	return false, false
}

// networkFor pins the address family: the destination is a literal, and a
// v4-mapped v6 address must still leave as IPv4.
func networkFor(proto string, dst netip.AddrPort) string {
	if dst.Addr().Unmap().Is4() {
		return proto + "4"
	}
	return proto + "6"
}
