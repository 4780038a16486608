package egress

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// controlFunc is the hook net.Dialer and net.ListenConfig run on a new
// socket before bind and connect.
type controlFunc = func(network, address string, c syscall.RawConn) error

// applyOnFD turns set into a controlFunc: options must be on the socket
// before it connects or sends, or its first packets would take the wrong
// route.
func applyOnFD(set func(fd int) error) controlFunc {
	return func(_, _ string, c syscall.RawConn) error {
		var setErr error
		if err := c.Control(func(fd uintptr) { setErr = set(int(fd)) }); err != nil {
			return err
		}
		return setErr
	}
}

// egressControl returns the controlFunc applying the egress options; nil
// when there is nothing to set, so plain sockets skip the hook.
func egressControl(iface string, mark int) controlFunc {
	if iface == "" && mark == 0 {
		return nil
	}
	return applyOnFD(func(fd int) error { return setEgressOpts(fd, iface, mark) })
}

// setEgressOpts keeps the gateway's own upstream traffic out of the TUN it
// serves. SO_BINDTODEVICE sends the socket out of iface whatever the routing
// table says (the TUN may hold the route to the destination); SO_MARK lets
// the host's policy routing and firewall rules recognise the gateway's own
// sockets, to route them out or exempt them from rules that steer traffic
// into the TUN.
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
