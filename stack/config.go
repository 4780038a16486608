package stack

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/tungate/tungate/internal/cfgerr"
	"github.com/tungate/tungate/internal/units"
)

// EgressConfig is the [egress] section: where upstream sockets go out.
type EgressConfig struct {
	Interface   string         `toml:"interface"`    // SO_BINDTODEVICE; empty: let the kernel route
	Mark        int            `toml:"mark"`         // SO_MARK, 0 for none
	DialTimeout units.Duration `toml:"dial_timeout"` // default 10s
}

// Config is the [stack] section: gVisor tuning.
type Config struct {
	TCPMaxInFlight      int            `toml:"tcp_max_in_flight"`      // default 8192
	TCPReceiveBufferMax units.Size     `toml:"tcp_receive_buffer_max"` // default 8MiB
	TCPSendBufferMax    units.Size     `toml:"tcp_send_buffer_max"`    // default 6MiB
	CongestionControl   string         `toml:"congestion_control"`     // reno | cubic
	UDPIdleTimeout      units.Duration `toml:"udp_idle_timeout"`       // default 60s
}

// Defaults fills zero values with the documented defaults.
func (c *Config) Defaults() {
	if c.TCPMaxInFlight == 0 {
		c.TCPMaxInFlight = 8192
	}
	if c.TCPReceiveBufferMax == 0 {
		c.TCPReceiveBufferMax = 8 << 20
	}
	if c.TCPSendBufferMax == 0 {
		c.TCPSendBufferMax = 6 << 20
	}
	if c.CongestionControl == "" {
		c.CongestionControl = "reno"
	}
	if c.UDPIdleTimeout == 0 {
		c.UDPIdleTimeout = units.Duration(60 * time.Second)
	}
}

// minTCPBuffer is the smallest buffer limit accepted: below one segment
// plus headers a TCP endpoint cannot make progress.
const minTCPBuffer = 4 << 10

// Validate reports every invalid setting, with keys relative to the file:
// {"stack", "congestion_control"}. Call Defaults first.
func (c *Config) Validate() cfgerr.List {
	var l cfgerr.List
	if c.TCPMaxInFlight < 1 {
		l.Addf(fmt.Sprintf("must be at least 1, got %d", c.TCPMaxInFlight), "stack", "tcp_max_in_flight")
	}
	if c.TCPReceiveBufferMax < minTCPBuffer {
		l.Addf(fmt.Sprintf("must be at least %s, got %s", units.Size(minTCPBuffer), c.TCPReceiveBufferMax), "stack", "tcp_receive_buffer_max")
	}
	if c.TCPSendBufferMax < minTCPBuffer {
		l.Addf(fmt.Sprintf("must be at least %s, got %s", units.Size(minTCPBuffer), c.TCPSendBufferMax), "stack", "tcp_send_buffer_max")
	}
	switch c.CongestionControl {
	case "reno", "cubic":
	default:
		l.Addf(fmt.Sprintf("must be \"reno\" or \"cubic\", got %q", c.CongestionControl), "stack", "congestion_control")
	}
	if c.UDPIdleTimeout.D() < time.Second {
		l.Addf(fmt.Sprintf("must be at least 1s, got %s", c.UDPIdleTimeout), "stack", "udp_idle_timeout")
	}
	return l
}

// Defaults fills zero values with the documented defaults.
func (c *EgressConfig) Defaults() {
	if c.DialTimeout == 0 {
		c.DialTimeout = units.Duration(10 * time.Second)
	}
}

// maxIfName is IFNAMSIZ minus the terminating NUL.
const maxIfName = 15

// Validate reports every invalid setting, with keys like {"egress", "mark"}.
// Call Defaults first.
func (c *EgressConfig) Validate() cfgerr.List {
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
