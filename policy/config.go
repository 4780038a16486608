package policy

import "github.com/tungate/tungate/internal/units"

// Config is everything the policy is compiled from: [defaults], [sets],
// [[rule]], [inspect], [log], [reject] and [reload]. The loader fills it
// from the file; tests build it directly.
type Config struct {
	Defaults Defaults
	Sets     map[string]SetConfig
	Rules    []RuleConfig
	Inspect  InspectConfig
	Log      LogConfig
	Reject   RejectConfig
	Reload   ReloadConfig

	// Dir is where relative set files are looked up: the directory of the
	// configuration file ("" = the working directory).
	Dir string
}

// RejectConfig is the [reject] section.
type RejectConfig struct {
	// MaxRate bounds how many rejects per second are answered ("N/s",
	// "N/m", "N/h"); above it a reject degrades to a drop. "" = unlimited.
	MaxRate string `toml:"max_rate"`
}

// ReloadConfig is the [reload] section.
type ReloadConfig struct {
	ExistingFlows string `toml:"existing_flows"` // keep (default) | recheck
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
	Type     string   `toml:"type"`     // cidr | port | domain
	Elements List     `toml:"elements"` // strings and integers
	Files    []string `toml:"files"`    // one element per line, '#' comments; relative to Config.Dir

	// Dynamic sets start empty and are filled at run time by add_to and
	// the control socket; their elements expire after Timeout.
	Dynamic     bool           `toml:"dynamic"`
	Timeout     units.Duration `toml:"timeout"`      // dynamic: default element lifetime (required)
	MaxElements int            `toml:"max_elements"` // dynamic: capacity (required)
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
	NotSrcPort List            `toml:"not_src_port"`
	CtState    List            `toml:"ct_state"`  // new | established | related | invalid
	ICMPType   List            `toml:"icmp_type"` // names ("echo-request") or numbers
	Payload    []PayloadConfig `toml:"payload"`
	Limit      *LimitConfig    `toml:"limit"`
	MaxConns   *MaxConnsConfig `toml:"max_conns"`
	AddTo      *AddToConfig    `toml:"add_to"`
	Action     string          `toml:"action"`
	RejectWith string          `toml:"reject_with"`
	Log        bool            `toml:"log"`
	Mode       string          `toml:"mode"` // enforce (default) | audit
}

// LimitConfig is a rule's limit: a token bucket per key.
type LimitConfig struct {
	Rate  string `toml:"rate"`  // "N/s", "N/m" or "N/h" (required)
	Burst int    `toml:"burst"` // bucket size, default 5
	Per   string `toml:"per"`   // src (default) | dst | rule
	Match string `toml:"match"` // over (default): the rate is exceeded | under
}

// MaxConnsConfig is a rule's max_conns: it matches when the source already
// has more than Count tracked flows.
type MaxConnsConfig struct {
	Per   string `toml:"per"` // src (the only key for now, default)
	Count int    `toml:"count"`
}

// AddToConfig is a rule's add_to: when the rule matches, put the flow's
// source or destination address into a dynamic set.
type AddToConfig struct {
	Set        string `toml:"set"`
	Key        string `toml:"key"`         // src (default) | dst
	FlushFlows bool   `toml:"flush_flows"` // also tear down that address's tracked flows
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
	Burst     int    `toml:"burst"`     // lines allowed at once; default: the per-second rate, at least 1
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
