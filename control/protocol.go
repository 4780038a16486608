package control

import (
	"encoding/json"
	"time"
)

// Version is the newest protocol version this package speaks and
// MinVersion the oldest. A server refuses requests of other versions and
// answers in the request's, so a CLI and a gateway of different ages fail
// with a clear message instead of misreading fields. Version 2 added the
// filters of conntrack.list and conntrack.flush and the conntrack.events
// feed; a client sends 2 only for those, so a gateway that predates them
// refuses the request rather than ignoring the filter (a filtered flush
// would have flushed everything) while everything else still works
// between versions.
const (
	Version    = 2
	MinVersion = 1
)

// Operations of version 1.
const (
	OpPing            = "ping"
	OpConntrackList   = "conntrack.list"
	OpConntrackStats  = "conntrack.stats"
	OpConntrackFlush  = "conntrack.flush"
	OpConntrackDelete = "conntrack.delete"
	OpRules           = "rules"
	OpReload          = "reload"
)

// Request is what a client sends.
type Request struct {
	V    int             `json:"v"`
	Op   string          `json:"op"`
	Args json.RawMessage `json:"args,omitempty"`
}

// Response is what a server answers. Data is last on the wire (see the
// package comment) and Error may follow it in a streamed answer.
type Response struct {
	V     int             `json:"v"`
	OK    bool            `json:"ok"`
	Error string          `json:"error,omitempty"`
	Data  json.RawMessage `json:"data,omitempty"`
}

// Defaults for Options.
const (
	DefaultMaxRequest   = 64 << 10
	DefaultMaxConns     = 8
	DefaultReadTimeout  = 5 * time.Second
	DefaultWriteTimeout = 10 * time.Second
)

// RemoteError is a failure the gateway reported (ok:false), as opposed to
// not reaching it. Its text is the gateway's message verbatim, so reload
// refusals keep their FILE:LINE:COL lines.
type RemoteError struct{ Msg string }

func (e *RemoteError) Error() string { return e.Msg }
