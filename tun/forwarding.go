package tun

import (
	"errors"
	"fmt"
)

// ErrForwardingOff is wrapped by CheckForwarding's errors.
var ErrForwardingOff = errors.New("forwarding is off")

// forwardingError names the sysctl to set; %w keeps ErrForwardingOff
// testable without repeating it in the message.
type forwardingError struct {
	family, sysctl string
}

func (e *forwardingError) Error() string {
	return e.family + " forwarding is off: steered traffic would be dropped by the kernel before it reaches tungate; enable it with \"sysctl -w " + e.sysctl + "=1\""
}

func (e *forwardingError) Unwrap() error { return ErrForwardingOff }

// CheckForwarding reports whether the kernel forwards IPv4 (or, with
// ipv6, IPv6) traffic in the calling thread's network namespace. Without
// forwarding, packets from steered interfaces are dropped before policy
// routing could send them into the TUN.
func CheckForwarding(ipv6 bool) error {
	path, family, sysctl := "/proc/sys/net/ipv4/ip_forward", "IPv4", "net.ipv4.ip_forward"
	if ipv6 {
		path, family, sysctl = "/proc/sys/net/ipv6/conf/all/forwarding", "IPv6", "net.ipv6.conf.all.forwarding"
	}
	v, err := readSysctl(path)
	if err != nil {
		return fmt.Errorf("cannot tell whether %s forwarding is on: %w", family, err)
	}
	if v != "1" {
		return &forwardingError{family: family, sysctl: sysctl}
	}
	return nil
}
