package egress

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/tungate/tungate/internal/cfgerr"
	"github.com/tungate/tungate/internal/units"
)

// Config is the [egress] section: where upstream sockets go out.
type Config struct {
	Interface   string         `toml:"interface"`    // SO_BINDTODEVICE; empty: let the kernel route
	Mark        int            `toml:"mark"`         // SO_MARK, 0 for none
	DialTimeout units.Duration `toml:"dial_timeout"` // default 10s
}

// defaultDialTimeout applies when dial_timeout is unset, so a silent
// upstream cannot hold a pending client handshake forever.
const defaultDialTimeout = 10 * time.Second

// maxIfName is IFNAMSIZ minus the terminating NUL.
const maxIfName = 15

// Defaults fills zero values with the documented defaults.
func (c *Config) Defaults() {
	if c.DialTimeout == 0 {
		c.DialTimeout = units.Duration(defaultDialTimeout)
	}
}

// Validate reports every invalid setting, with keys like {"egress", "mark"}.
// Call Defaults first.
func (c *Config) Validate() cfgerr.List {
	var l cfgerr.List
	if len(c.Interface) > maxIfName || strings.ContainsAny(c.Interface, "/ \t\n") {
		l.Addf(fmt.Sprintf("%q is not a valid interface name", c.Interface), "egress", "interface")
	}
	if c.Mark < 0 || int64(c.Mark) > math.MaxUint32 {
		l.Addf(fmt.Sprintf("must be between 0 and %d, got %d", uint32(math.MaxUint32), c.Mark), "egress", "mark")
	}
	if c.DialTimeout.D() <= 0 {
		l.Addf(fmt.Sprintf("must be positive, got %s", c.DialTimeout), "egress", "dial_timeout")
	}
	return l
}
