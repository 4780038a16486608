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

	// L7 field conditions (TOML dotted keys: tls.sni = { suffix = [...] }).
	// A rule with them decides only once the field is known: see
	// Verdict.Pending and Resume for tls/http, DecideDNS for dns.
	TLS  *TLSMatch  `toml:"tls"`
	HTTP *HTTPMatch `toml:"http"`
	DNS  *DNSMatch  `toml:"dns"`
}

// TLSMatch holds the tls.* keys of a rule.
type TLSMatch struct {
	SNI *StringMatch `toml:"sni"` // the ClientHello server_name
}

// HTTPMatch holds the http.* keys of a rule; the ones given must all
// match the same request.
type HTTPMatch struct {
	Host   *StringMatch `toml:"host"`   // Host (or absolute-form authority), no port
	Method *StringMatch `toml:"method"` // case-sensitive, as sent
	Path   *StringMatch `toml:"path"`   // the request target's path and query, as sent
}

// DNSMatch holds the dns.* keys of a rule.
type DNSMatch struct {
	QName *StringMatch `toml:"qname"` // the question name of each query
}

// StringMatch is one L7 field condition. It matches when any listed value
// matches (the lists OR together), or, with Absent, when the field is not
// there at all. Names (tls.sni, http.host, dns.qname) are compared
// lower-cased without a trailing dot, and their suffix is label-aware;
// "@set" in exact or suffix names a domain set.
type StringMatch struct {
	Exact   List `toml:"exact"`
	Suffix  List `toml:"suffix"`
	Prefix  List `toml:"prefix"`
	Keyword List `toml:"keyword"` // substring
	Regex   List `toml:"regex"`   // RE2 (Go regexp), unanchored
	Absent  bool `toml:"absent"`  // matches when the field could not be read
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

// PayloadConfig is one element of a rule's payload list. A rule's entries
// must all match (an AND sequence); an entry with distance or within is
// placed relative to the previous entry's match.
type PayloadConfig struct {
	Contains string `toml:"contains"` // a literal
	Hex      string `toml:"hex"`      // a byte-exact literal in hex: "de ad be ef" (blanks optional)
	Regex    string `toml:"regex"`    // RE2 over the stream text, see docs/configuration.md
	NoCase   bool   `toml:"nocase"`   // ASCII case folding (contains, regex)
	Dir      string `toml:"dir"`      // to_server | to_client | both (default to_server)

	// Offset and Depth bound where an entry may match, in absolute
	// positions of its direction's stream: it must start at or after
	// Offset and end at or before Offset+Depth (0 = no bound).
	Offset int64 `toml:"offset"`
	Depth  int64 `toml:"depth"`
	// Distance and Within make the entry relative to the previous one's
	// match ending at E: it must start at or after E+Distance and end at
	// or before E+Distance+Within (nil = not given).
	Distance *int64 `toml:"distance"`
	Within   *int64 `toml:"within"`
}

// InspectConfig is the [inspect] section.
type InspectConfig struct {
	MaxBytes    units.Size     `toml:"max_bytes"`    // default 16384
	Timeout     units.Duration `toml:"timeout"`      // default 500ms
	StreamDepth units.Size     `toml:"stream_depth"` // default 1MiB, 0 = whole stream
	// OnIncomplete is what a pending flow gets when some client bytes
	// arrived but max_bytes or timeout ran out before the field was
	// complete: "drop" (default: incomplete is not absent, or a stalled
	// ClientHello would escape a deny-list) or "no-match" (the fields
	// count as absent).
	OnIncomplete string `toml:"on_incomplete"`

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
