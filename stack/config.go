package stack

import "github.com/tungate/tungate/internal/units"

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
