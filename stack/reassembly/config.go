package reassembly

import (
	"fmt"
	"time"

	"github.com/tungate/tungate/internal/cfgerr"
	"github.com/tungate/tungate/internal/units"
)

// Config is the [fragments] section: how much incomplete datagrams may hold
// and for how long.
type Config struct {
	Memory  units.Size     `toml:"memory"`  // bytes incomplete datagrams may hold; default 4MiB
	Timeout units.Duration `toml:"timeout"` // an incomplete datagram is dropped this long after its first fragment; default 30s
}

// The defaults are Linux's: net.ipv4.ipfrag_high_thresh (4MiB) and
// net.ipv4.ipfrag_time (30s).
const (
	defaultMemory  = 4 << 20
	defaultTimeout = 30 * time.Second
)

// The bounds keep a typo from disabling reassembly or pinning a gigabyte:
// below 64KiB not even one maximum-size datagram fits, and past two
// minutes (RFC 8200 §4.5 suggests 60 seconds) a held fragment is more
// likely to be joined to a reused identification than to its own datagram.
const (
	minMemory  = 64 << 10
	maxMemory  = 1 << 30
	minTimeout = time.Second
	maxTimeout = 120 * time.Second
)

// Defaults fills zero values with the documented defaults.
func (c *Config) Defaults() {
	if c.Memory == 0 {
		c.Memory = defaultMemory
	}
	if c.Timeout == 0 {
		c.Timeout = units.Duration(defaultTimeout)
	}
}

// Validate reports every invalid setting, with keys like {"fragments",
// "memory"}. Call Defaults first.
func (c *Config) Validate() cfgerr.List {
	var l cfgerr.List
	if c.Memory < minMemory || c.Memory > maxMemory {
		l.Addf(fmt.Sprintf("must be between %s and %s, got %s", units.Size(minMemory), units.Size(maxMemory), c.Memory), "fragments", "memory")
	}
	if d := c.Timeout.D(); d < minTimeout || d > maxTimeout {
		l.Addf(fmt.Sprintf("must be between %s and %s, got %s", minTimeout, maxTimeout, c.Timeout), "fragments", "timeout")
	}
	return l
}
