package l7gate

import (
	"context"
	"io"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"

	"github.com/tungate/tungate/policy"
	"github.com/tungate/tungate/stack/relay"
)

// ClientConn is the client side of a relayed TCP flow. A refusal with
// RejectHTTP403 turns the relay's reset of the client into an answer:
// when the relay (or the pending path) closes the connection, the 403
// response goes out, the sending side is closed, and the client's
// remaining bytes are read and discarded for a moment so that closing
// with unread data does not reset the answer away.
type ClientConn struct {
	*gonet.TCPConn
	ep  tcpip.Endpoint
	ctx context.Context // ends the lingering read early (teardown)

	gate *httpGate // nil: Read is the connection's own

	mu      sync.Mutex // guards answer, resetAt
	answer  bool       // send HTTP403Response on Close instead of resetting
	resetAt bool       // a refusal is due: reset on Close (and hold back the FIN)
}

var _ relay.Conn = (*ClientConn)(nil)

// NewClientConn wraps the client endpoint of an accepted flow; ctx ends
// the flow (flush, recheck, shutdown).
func NewClientConn(c *gonet.TCPConn, ep tcpip.Endpoint, ctx context.Context) *ClientConn {
	return &ClientConn{TCPConn: c, ep: ep, ctx: ctx}
}

// forbiddenLinger bounds writing the 403 answer and draining the client.
const forbiddenLinger = 2 * time.Second

// Read reads the client's bytes; on a gated flow only those the gate lets
// through.
func (c *ClientConn) Read(b []byte) (int, error) {
	if c.gate != nil {
		return c.gatedRead(b)
	}
	return c.TCPConn.Read(b)
}

// refuseLater records a refusal that takes effect when the relay closes
// the connection: a 403 answer for RejectHTTP403, else a reset.
func (c *ClientConn) refuseLater(a policy.Action, k policy.RejectKind) {
	if a == policy.ActionReject && k == policy.RejectHTTP403 {
		c.answerForbidden()
		return
	}
	c.mu.Lock()
	c.resetAt = true
	c.mu.Unlock()
}

// CloseWrite half-closes toward the client, unless a refusal is due: its
// answer (or reset) must be the end of the stream.
func (c *ClientConn) CloseWrite() error {
	c.mu.Lock()
	due := c.answer || c.resetAt
	c.mu.Unlock()
	if due {
		return nil
	}
	return c.TCPConn.CloseWrite()
}

// answerForbidden makes the next Abort and Close answer 403.
func (c *ClientConn) answerForbidden() {
	c.mu.Lock()
	c.answer = true
	c.mu.Unlock()
}

func (c *ClientConn) answering() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.answer
}

// Abort resets the client, unless a 403 answer is due: then the relay's
// past deadline stops the pumps and Close answers.
func (c *ClientConn) Abort() {
	if !c.answering() {
		c.ep.Abort()
	}
}

// Reset resets the client and releases the connection.
func (c *ClientConn) Reset() {
	c.ep.Abort()
	_ = c.TCPConn.Close()
}

// refuse ends a flow the rules refused after the handshake: a 403 answer
// for RejectHTTP403, a reset otherwise (drops too: the handshake has
// completed, so staying silent would only leave the client hanging).
func (c *ClientConn) refuse(a policy.Action, k policy.RejectKind) {
	if a == policy.ActionReject && k == policy.RejectHTTP403 {
		c.answerForbidden()
		_ = c.Close()
		return
	}
	c.Reset()
}

// Close sends the 403 answer, or resets, when a refusal is due; then
// closes.
func (c *ClientConn) Close() error {
	c.mu.Lock()
	answer, reset := c.answer, c.resetAt
	c.answer, c.resetAt = false, false
	c.mu.Unlock()
	if reset && !answer {
		c.ep.Abort()
	}
	if answer {
		_ = c.TCPConn.SetDeadline(time.Now().Add(forbiddenLinger))
		stop := context.AfterFunc(c.ctx, func() { _ = c.TCPConn.SetDeadline(time.Unix(1, 0)) })
		if _, err := io.WriteString(c.TCPConn, policy.HTTP403Response); err == nil && c.TCPConn.CloseWrite() == nil {
			var sink [2048]byte
			for {
				if _, err := c.TCPConn.Read(sink[:]); err != nil {
					break
				}
			}
		}
		stop()
	}
	return c.TCPConn.Close()
}
