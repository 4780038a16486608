// Package control is the protocol between a running gateway and the
// operator's CLI: a unix socket (mode 0600, no TCP listener) on which each
// connection carries one JSON request and one JSON response. It exists on
// its own so that neither the data plane (stack) nor the command line (cmd)
// has to grow a socket server, a wire format and its limits: the gateway
// hands it read-only access to its flow table and policy plus a reload
// function, and the CLI uses its client and formatting.
//
// Wire format, version 1. Request, one JSON object:
//
//	{"v":1,"op":"conntrack.list","args":{...}}
//
// Response, one JSON object, then the server closes the connection:
//
//	{"v":1,"ok":true,"data":...}
//	{"v":1,"ok":false,"error":"..."}
//
// Listings are streamed: "data" is written element by element, last in the
// object, so neither side holds a quarter million flows in memory; an error
// that interrupts a stream is sent as an "error" member after "data".
// "conntrack.list" and "conntrack.flush" take a FlowFilter as args (none
// selects everything). "conntrack.events" is a live stream: each element
// (a FlowEvent) is flushed as it happens, and the feed ends when the client
// closes its connection, which the server notices by reading it.
package control
