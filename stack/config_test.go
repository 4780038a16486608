package stack

import (
	"strings"
	"testing"
	"time"

	"github.com/tungate/tungate/internal/units"
)

func TestConfigDefaults(t *testing.T) {
	var c Config
	c.Defaults()
	if c.TCPMaxInFlight != 8192 || c.TCPReceiveBufferMax != 8<<20 || c.TCPSendBufferMax != 6<<20 ||
		c.CongestionControl != "reno" || c.UDPIdleTimeout.D() != 60*time.Second || c.UDPReceiveBuffer != 64<<10 {
		t.Errorf("defaults = %+v", c)
	}
	if errs := c.Validate(); len(errs) != 0 {
		t.Errorf("defaults do not validate: %v", errs)
	}
	var e EgressConfig
	e.Defaults()
	if e.DialTimeout.D() != 10*time.Second {
		t.Errorf("dial_timeout default = %v, want 10s", e.DialTimeout)
	}
	if errs := e.Validate(); len(errs) != 0 {
		t.Errorf("egress defaults do not validate: %v", errs)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config, *EgressConfig)
		key  string
	}{
		{"congestion", func(c *Config, _ *EgressConfig) { c.CongestionControl = "bbr" }, "stack.congestion_control"},
		{"in flight", func(c *Config, _ *EgressConfig) { c.TCPMaxInFlight = -1 }, "stack.tcp_max_in_flight"},
		{"rcvbuf", func(c *Config, _ *EgressConfig) { c.TCPReceiveBufferMax = 100 }, "stack.tcp_receive_buffer_max"},
		{"sndbuf", func(c *Config, _ *EgressConfig) { c.TCPSendBufferMax = 1 }, "stack.tcp_send_buffer_max"},
		{"udp idle", func(c *Config, _ *EgressConfig) { c.UDPIdleTimeout = units.Duration(time.Millisecond) }, "stack.udp_idle_timeout"},
		{"udp rcvbuf small", func(c *Config, _ *EgressConfig) { c.UDPReceiveBuffer = 1 << 10 }, "stack.udp_receive_buffer"},
		{"udp rcvbuf big", func(c *Config, _ *EgressConfig) { c.UDPReceiveBuffer = 8 << 20 }, "stack.udp_receive_buffer"},
		{"mark", func(_ *Config, e *EgressConfig) { e.Mark = -2 }, "egress.mark"},
		{"mark too big", func(_ *Config, e *EgressConfig) { e.Mark = 1 << 33 }, "egress.mark"},
		{"interface", func(_ *Config, e *EgressConfig) { e.Interface = "a-very-long-interface-name" }, "egress.interface"},
		{"dial timeout", func(_ *Config, e *EgressConfig) { e.DialTimeout = units.Duration(-time.Second) }, "egress.dial_timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c Config
			var e EgressConfig
			c.Defaults()
			e.Defaults()
			tc.mod(&c, &e)
			errs := append(c.Validate(), e.Validate()...)
			if len(errs) != 1 {
				t.Fatalf("got %d errors %v, want 1", len(errs), errs)
			}
			if got := strings.Join(errs[0].Key, "."); got != tc.key {
				t.Errorf("key = %s, want %s", got, tc.key)
			}
		})
	}
}
