package stack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// defaultDialTimeout applies when [egress] dial_timeout is unset, so a silent
// upstream cannot hold a pending client handshake forever.
const defaultDialTimeout = 10 * time.Second

// Dialer opens upstream sockets toward real destinations through the egress
// interface. It is safe for concurrent use.
type Dialer struct {
	d net.Dialer
}

// NewDialer returns a Dialer whose sockets carry SO_BINDTODEVICE (when
// cfg.Interface is set) and SO_MARK (when cfg.Mark is non-zero), so they leave
// through the egress interface and never loop back into the TUN.
func NewDialer(cfg EgressConfig) *Dialer {
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
	c, err := d.d.DialContext(ctx, netFor("tcp", dst), dst.String())
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// DialUDP returns a UDP socket connected to dst, so the kernel filters
// replies from anyone else.
func (d *Dialer) DialUDP(ctx context.Context, dst netip.AddrPort) (*net.UDPConn, error) {
	c, err := d.d.DialContext(ctx, netFor("udp", dst), dst.String())
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

// netFor pins the address family: the destination is a literal, and a
// v4-mapped v6 address must still leave as IPv4.
func netFor(proto string, dst netip.AddrPort) string {
	if dst.Addr().Unmap().Is4() {
		return proto + "4"
	}
	return proto + "6"
}

// egressControl returns a socket Control hook applying the egress options
// before bind/connect; nil when there is nothing to set.
func egressControl(iface string, mark int) func(network, address string, c syscall.RawConn) error {
	if iface == "" && mark == 0 {
		return nil
	}
	return func(_, _ string, c syscall.RawConn) error {
		var opErr error
		err := c.Control(func(fd uintptr) { opErr = setEgressOpts(int(fd), iface, mark) })
		if err != nil {
			return err
		}
		return opErr
	}
}

func setEgressOpts(fd int, iface string, mark int) error {
	if iface != "" {
		if err := unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, iface); err != nil {
			return fmt.Errorf("SO_BINDTODEVICE %q: %w", iface, err)
		}
	}
	if mark != 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, mark); err != nil {
			return fmt.Errorf("SO_MARK %d: %w", mark, err)
		}
	}
	return nil
}
