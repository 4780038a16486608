package egress

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// closedPort returns an address on which nothing listens (a port that was
// just free), so connecting to it is refused.
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

// sockOpts reads back the egress options of a socket.
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

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
