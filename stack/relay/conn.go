package relay

import "net"

// Conn is one side of a relayed TCP flow. Both the client side (a gVisor
// endpoint) and the upstream side (*net.TCPConn) can shut down one
// direction at a time, which is how an EOF is passed on.
//
// Abort must reset the connection (RST, not FIN), so a peer never takes a
// torn-down flow for a complete one, and must tolerate a later Close: the
// relay closes both sides on its way out whatever happened.
type Conn interface {
	net.Conn
	CloseWrite() error
	CloseRead() error
	Abort()
}

// Upstream makes an egress socket a Conn.
func Upstream(c *net.TCPConn) Conn { return upstream{c} }

// upstream is a single pointer, so storing it in a Conn does not allocate.
type upstream struct{ *net.TCPConn }

// Abort closes with SO_LINGER 0, which makes the kernel send a RST
// instead of a FIN.
func (u upstream) Abort() {
	_ = u.SetLinger(0)
	_ = u.Close()
}
