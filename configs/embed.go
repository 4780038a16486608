package configs

import _ "embed"

// Demo is demo.toml, the policy `tungate demo` runs the gateway with.
//
//go:embed demo.toml
var Demo []byte
