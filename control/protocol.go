package control

import (
	"encoding/json"
	"time"
)

// Version is the protocol version this package speaks. A server refuses
// requests of any other version, so an old CLI against a new gateway (or the
// reverse) fails with a clear message instead of misreading fields.
const Version = 1

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
