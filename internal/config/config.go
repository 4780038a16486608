// Package config reads the tungate TOML file into each package's own
// configuration section and reports every problem as FILE:LINE:COL: message.
// It exists apart from cmd so that `tungate run`, `check`, `explain` and the
// tests of configs/ read files the same way, and apart from the packages it
// fills because they validate Go values by key path and know no files.
package config

import (
	"github.com/tungate/tungate/conntrack"
	"github.com/tungate/tungate/policy"
	"github.com/tungate/tungate/stack"
	"github.com/tungate/tungate/tun"
)

// DefaultSocket is where the control socket lives unless [control] says
// otherwise.
const DefaultSocket = "/run/tungate.sock"

// File is a loaded, validated configuration with package defaults applied.
type File struct {
	Tun       tun.Config
	Routing   tun.RoutingConfig
	Egress    stack.EgressConfig
	Stack     stack.Config
	Conntrack conntrack.Config
	Fragments stack.FragmentsConfig
	Control   ControlConfig
	// Policy is the policy as written; Compiled is what it compiled to.
	Policy   policy.Config
	Compiled *policy.Policy
}

// ControlConfig is the [control] section.
type ControlConfig struct {
	Socket string `toml:"socket"` // unix socket path, default DefaultSocket
}

// Defaults fills zero values with the documented defaults.
func (c *ControlConfig) Defaults() {
	if c.Socket == "" {
		c.Socket = DefaultSocket
	}
}

// Raw mirrors the file's top level: the loader decodes into it and then
// assembles File. It is exported so that tests (the docs check) enumerate
// the file's keys from the one definition.
type Raw struct {
	Tun       tun.Config                  `toml:"tun"`
	Routing   tun.RoutingConfig           `toml:"routing"`
	Egress    stack.EgressConfig          `toml:"egress"`
	Stack     stack.Config                `toml:"stack"`
	Conntrack conntrack.Config            `toml:"conntrack"`
	Fragments stack.FragmentsConfig       `toml:"fragments"`
	Inspect   policy.InspectConfig        `toml:"inspect"`
	Control   ControlConfig               `toml:"control"`
	Log       policy.LogConfig            `toml:"log"`
	Reject    policy.RejectConfig         `toml:"reject"`
	Reload    policy.ReloadConfig         `toml:"reload"`
	Defaults  policy.Defaults             `toml:"defaults"`
	Sets      map[string]policy.SetConfig `toml:"sets"`
	Rules     []policy.RuleConfig         `toml:"rule"`
}
