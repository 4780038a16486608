package tun

// Config is the [tun] section.
type Config struct {
	Name      string   `toml:"name"`      // device name, default "tungate0"
	MTU       int      `toml:"mtu"`       // default 1500
	Queues    int      `toml:"queues"`    // >1: multi-queue device, one reader per queue
	Addresses []string `toml:"addresses"` // optional CIDRs put on the device
	// Offload opens the device with a virtio-net header and TSO/checksum
	// offloads (IFF_VNET_HDR): far fewer syscalls per byte. Off by
	// default: the plain path (water) is the one with the longest record.
	Offload bool `toml:"offload"`
}

// RoutingConfig is the [routing] section. An empty Steer means tungate
// leaves routing to the operator.
type RoutingConfig struct {
	Steer    []string `toml:"steer"`    // interfaces whose forwarded traffic is routed into the TUN
	Table    int      `toml:"table"`    // default 7321
	Priority int      `toml:"priority"` // ip rule priority, default 7321
}

// Defaults fills zero values with the documented defaults.
func (c *Config) Defaults() {
	if c.Name == "" {
		c.Name = "tungate0"
	}
	if c.MTU == 0 {
		c.MTU = 1500
	}
	if c.Queues == 0 {
		c.Queues = 1
	}
}

// Defaults fills zero values with the documented defaults.
func (c *RoutingConfig) Defaults() {
	if c.Table == 0 {
		c.Table = 7321
	}
	if c.Priority == 0 {
		c.Priority = 7321
	}
}
