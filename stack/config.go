package stack

import (
	"fmt"
	"time"

	"github.com/tungate/tungate/internal/cfgerr"
	"github.com/tungate/tungate/internal/units"
	"github.com/tungate/tungate/stack/egress"
	"github.com/tungate/tungate/stack/reassembly"
)

// EgressConfig is the [egress] section; egress owns it.
type EgressConfig = egress.Config

// FragmentsConfig is the [fragments] section; reassembly owns it.
type FragmentsConfig = reassembly.Config

// Config is the [stack] section: gVisor tuning.
type Config struct {
	TCPMaxInFlight      int            `toml:"tcp_max_in_flight"`      // default 8192
	TCPReceiveBufferMax units.Size     `toml:"tcp_receive_buffer_max"` // default 8MiB
	TCPSendBufferMax    units.Size     `toml:"tcp_send_buffer_max"`    // default 6MiB
	CongestionControl   string         `toml:"congestion_control"`     // reno | cubic
	UDPIdleTimeout      units.Duration `toml:"udp_idle_timeout"`       // default 60s
	UDPReceiveBuffer    units.Size     `toml:"udp_receive_buffer"`     // per flow, payload bytes; default 64KiB
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
	if c.UDPReceiveBuffer == 0 {
		c.UDPReceiveBuffer = defaultUDPReceiveBuffer
	}
}

// defaultUDPReceiveBuffer bounds what one UDP flow may queue inside the
// gateway (gVisor counts payload bytes): 46 full-size datagrams or 1024
// small ones, ~20 ms of backlog when a flood outruns the relay. gVisor's
// own default (212 KiB) held ~60 ms of stale datagrams that kept reaching
// the server after the client had gone: a new iperf3 UDP test on the same
// server port then paired with the old flow and hung (3 of 5 runs of
// tgbench -tests udp_64,udp_1400; 0 of 11 with 64 KiB). It also bounds the
// memory a flood of many UDP flows can pin.
const defaultUDPReceiveBuffer = 64 << 10

// minTCPBuffer is the smallest buffer limit accepted: below one segment
// plus headers a TCP endpoint cannot make progress.
const minTCPBuffer = 4 << 10

// UDP receive buffer bounds, those gVisor's endpoints accept (it would
// clamp other values silently). A datagram larger than the buffer still
// passes when nothing is queued.
const (
	minUDPBuffer = 4 << 10
	maxUDPBuffer = 4 << 20
)

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
	if c.UDPReceiveBuffer < minUDPBuffer || c.UDPReceiveBuffer > maxUDPBuffer {
		l.Addf(fmt.Sprintf("must be between %s and %s, got %s", units.Size(minUDPBuffer), units.Size(maxUDPBuffer), c.UDPReceiveBuffer), "stack", "udp_receive_buffer")
	}
	return l
}
