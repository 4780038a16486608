package tun

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckForwarding(t *testing.T) {
	enterNetns(t)
	cases := []struct {
		ipv6   bool
		path   string
		sysctl string
	}{
		{false, "/proc/sys/net/ipv4/ip_forward", `"sysctl -w net.ipv4.ip_forward=1"`},
		{true, "/proc/sys/net/ipv6/conf/all/forwarding", `"sysctl -w net.ipv6.conf.all.forwarding=1"`},
	}
	for _, c := range cases {
		if err := writeSysctl(c.path, "0"); err != nil {
			t.Fatal(err)
		}
		err := CheckForwarding(c.ipv6)
		if !errors.Is(err, ErrForwardingOff) || !strings.Contains(err.Error(), c.sysctl) || !strings.Contains(err.Error(), "before it reaches tungate") {
			t.Errorf("CheckForwarding(%v) with forwarding off: %v", c.ipv6, err)
		}
		if err := writeSysctl(c.path, "1"); err != nil {
			t.Fatal(err)
		}
		if err := CheckForwarding(c.ipv6); err != nil {
			t.Errorf("CheckForwarding(%v) with forwarding on: %v", c.ipv6, err)
		}
	}
}
