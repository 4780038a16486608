// Package relay copies the bytes of one proxied flow between its client-side
// and its upstream connection: TCP as two half-closable streams, with an
// optional payload inspector that sees every chunk before it is forwarded,
// and UDP as datagrams, one read to one write, until the flow goes idle.
//
// It owns the copy loops, their buffers, and how a flow is torn down: a
// clean end half-closes, anything else resets both sides. It must not know
// how the connections were made (a gVisor endpoint, an egress socket: each
// brings its own Conn, Upstream being the one for a plain *net.TCPConn),
// what conntrack or the stack do with the result, or how a policy decides:
// it sees a policy only through Inspector, and reports a hit through
// HitHandler and Stats.
package relay
