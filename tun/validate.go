package tun

import (
	"net/netip"
	"strconv"

	"github.com/tungate/tungate/internal/cfgerr"
)

// Limits of the [tun] and [routing] settings.
const (
	// MinMTU is IPv6's minimum link MTU. Below it the kernel disables IPv6
	// on the device, and tungate forwards both families.
	MinMTU = 1280
	MaxMTU = 65535
	// MaxQueues bounds the reader goroutines; more queues than cores only
	// add contention.
	MaxQueues = 16
	// MaxPriority keeps steering rules ahead of the main (32766) and
	// default (32767) rules, or they would never match.
	MaxPriority = 32765
	maxTable    = 1<<31 - 1
	// ifNameMax is IFNAMSIZ without the terminating NUL.
	ifNameMax = 15
)

// Validate reports every invalid [tun] setting, keyed {"tun", field}.
// Call Defaults first: zero values are reported, not filled in.
func (c *Config) Validate() cfgerr.List {
	var errs cfgerr.List
	if msg := checkIfName(c.Name); msg != "" {
		errs.Addf(msg, "tun", "name")
	}
	if c.MTU < MinMTU || c.MTU > MaxMTU {
		errs.Addf("must be between "+strconv.Itoa(MinMTU)+" and "+strconv.Itoa(MaxMTU)+" (IPv6 needs at least 1280)", "tun", "mtu")
	}
	if c.Queues < 1 || c.Queues > MaxQueues {
		errs.Addf("must be between 1 and "+strconv.Itoa(MaxQueues), "tun", "queues")
	}
	seen := make(map[netip.Prefix]int, len(c.Addresses))
	for i, s := range c.Addresses {
		p, err := parseAddress(s)
		if err != nil {
			errs.Addf(err.Error(), "tun", "addresses", i)
			continue
		}
		if j, dup := seen[p]; dup {
			errs.Addf("duplicate of addresses["+strconv.Itoa(j)+"]", "tun", "addresses", i)
			continue
		}
		seen[p] = i
	}
	return errs
}

// Validate reports every invalid [routing] setting, keyed {"routing", field}.
// Call Defaults first: zero values are reported, not filled in.
func (c *RoutingConfig) Validate() cfgerr.List {
	var errs cfgerr.List
	seen := make(map[string]int, len(c.Steer))
	for i, name := range c.Steer {
		if msg := checkIfName(name); msg != "" {
			errs.Addf(msg, "routing", "steer", i)
			continue
		}
		if j, dup := seen[name]; dup {
			errs.Addf("duplicate of steer["+strconv.Itoa(j)+"]", "routing", "steer", i)
			continue
		}
		seen[name] = i
	}
	switch {
	case c.Table < 1 || c.Table > maxTable:
		errs.Addf("must be between 1 and "+strconv.Itoa(maxTable), "routing", "table")
	case c.Table == 253 || c.Table == 254 || c.Table == 255:
		errs.Addf("253, 254 and 255 are the kernel's default, main and local tables; pick a table of your own", "routing", "table")
	}
	if c.Priority < 1 || c.Priority > MaxPriority {
		errs.Addf("must be between 1 and "+strconv.Itoa(MaxPriority)+" so the rule is consulted before the main table", "routing", "priority")
	}
	return errs
}

// parseAddress accepts an interface address in CIDR form, e.g.
// "198.18.0.1/24" or "2001:2::1/64". The host part is kept: it is the
// address the device gets.
func parseAddress(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a := p.Addr()
	switch {
	case a.Is4In6():
		return netip.Prefix{}, errorString("IPv4-mapped IPv6 address " + strconv.Quote(s) + ": write the IPv4 address")
	case a.IsUnspecified():
		return netip.Prefix{}, errorString("unspecified address " + strconv.Quote(s))
	case a.IsMulticast():
		return netip.Prefix{}, errorString("multicast address " + strconv.Quote(s))
	}
	return p, nil
}

// checkIfName applies the kernel's rules for interface names
// (dev_valid_name) and returns "" when name is valid. '%' is refused too:
// the kernel would treat it as a pattern and pick a different name.
func checkIfName(name string) string {
	switch {
	case name == "":
		return "interface name is empty"
	case len(name) > ifNameMax:
		return "interface name " + strconv.Quote(name) + " is longer than 15 bytes"
	case name == "." || name == "..":
		return "interface name " + strconv.Quote(name) + " is not allowed"
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f || c == '/' || c == ':' || c == '%' {
			return "interface name " + strconv.Quote(name) + " contains " + strconv.Quote(string([]byte{c})) + "; use letters, digits, '-', '_' or '.'"
		}
	}
	return ""
}

type errorString string

func (e errorString) Error() string { return string(e) }
