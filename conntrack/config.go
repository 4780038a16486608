package conntrack

// Config is the [conntrack] section.
type Config struct {
	MaxFlows          int `toml:"max_flows"`            // default 262144
	MaxFlowsPerSource int `toml:"max_flows_per_source"` // default 4096
}
