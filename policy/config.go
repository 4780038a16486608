package policy

import "github.com/tungate/tungate/internal/units"

// Config is everything the policy is compiled from: [defaults], [sets],
// [[rule]], [inspect] and [log]. The loader fills it from the file; tests
// build it directly.
type Config struct {
	Defaults Defaults
	Sets     map[string]SetConfig
	Rules    []RuleConfig
	Inspect  InspectConfig
	Log      LogConfig
}

// Defaults is the [defaults] section.
type Defaults struct {
	Policy     string `toml:"policy"`      // required: allow | drop | reject
	Invalid    string `toml:"invalid"`     // default drop
	RejectWith string `toml:"reject_with"` // default auto
	Mode       string `toml:"mode"`        // enforce | audit
}

// SetConfig is one [sets.NAME] table.
type SetConfig struct {
	Type     string `toml:"type"`     // cidr | port | domain
	Elements List   `toml:"elements"` // strings and integers
}

// RuleConfig is one [[rule]] table. List-valued keys accept a single value
// or an array; their elements are validated by Compile.
type RuleConfig struct {
	Name       string          `toml:"name"`
	Proto      List            `toml:"proto"`
	Src        List            `toml:"src"`
	Dst        List            `toml:"dst"`
	NotSrc     List            `toml:"not_src"`
	NotDst     List            `toml:"not_dst"`
	SrcPort    List            `toml:"src_port"`
	DstPort    List            `toml:"dst_port"`
	NotDstPort List            `toml:"not_dst_port"`
	Payload    []PayloadConfig `toml:"payload"`
	Action     string          `toml:"action"`
	RejectWith string          `toml:"reject_with"`
	Log        bool            `toml:"log"`
}

// PayloadConfig is one element of a rule's payload list.
type PayloadConfig struct {
	Contains string `toml:"contains"`
	NoCase   bool   `toml:"nocase"`
	Dir      string `toml:"dir"` // to_server | to_client | both (default to_server)
}

// InspectConfig is the [inspect] section.
type InspectConfig struct {
	MaxBytes    units.Size     `toml:"max_bytes"`    // default 16384
	Timeout     units.Duration `toml:"timeout"`      // default 500ms
	StreamDepth units.Size     `toml:"stream_depth"` // default 1MiB, 0 = whole stream

	// StreamDepthSet says stream_depth was written in the file, so that an
	// explicit 0 (whole stream) is told apart from an absent key (1MiB).
	// The loader sets it; Compile never clears it.
	StreamDepthSet bool `toml:"-"`
}

// LogConfig is the [log] section.
type LogConfig struct {
	Level     string `toml:"level"`     // debug | info | warn | error
	Decisions string `toml:"decisions"` // none | drops | all
	Rate      string `toml:"rate"`      // "20/s"
}

// List is a TOML value that may be written as one scalar or as an array of
// scalars: proto = "tcp" and proto = ["tcp", "udp"] both decode.
type List []any

// UnmarshalTOML implements toml.Unmarshaler.
func (l *List) UnmarshalTOML(v any) error {
	if a, ok := v.([]any); ok {
		*l = append((*l)[:0], a...)
		return nil
	}
	*l = List{v}
	return nil
}
