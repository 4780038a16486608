package l7gate

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
	"unsafe"

	"github.com/tungate/tungate/conntrack"
	"github.com/tungate/tungate/policy"
	"github.com/tungate/tungate/policy/l7"
	"github.com/tungate/tungate/stack/verdict"
)

// httpGate inspects the client's bytes of a flow that an HTTP request
// head let through (ServePending), before the relay forwards them, so
// that a refused later request of a kept-alive or pipelined connection is
// cut out exactly: the requests before it still reach the server and are
// answered, then the server's side is half-closed, and once the server
// has answered and closed (or after refusalDrain) the client gets the
// 403 answer or a reset. The inspector's payload rules are checked here
// too for the client's direction; the relay feeds it the server's
// direction through gatedInspector.
type httpGate struct {
	mu sync.Mutex // guards in (not concurrency-safe) and track; serialises both directions
	in *auditing
	// track follows the same request stream as the inspector's HTTP
	// check, to learn where each request head starts and ends.
	track     l7.HTTPState
	trackDone bool

	// Read state, used by the relay's client-side pump only.
	eof bool // a request was refused: the client's stream ends here

	// Where refusals are applied, and the upstream whose wait for an
	// answer a refusal bounds (set before the relay starts).
	g        *Gate
	pol      *policy.Policy
	key      conntrack.Key
	upstream net.Conn
}

// refusalDrain bounds how long the server may take to answer the requests
// before a refused one, once its side was half-closed.
const refusalDrain = 5 * time.Second

// errPayloadHit ends the relay (both sides aborted) when a payload rule
// refuses client bytes the gate inspected.
var errPayloadHit = errors.New("l7gate: payload rule refused the client's bytes")

// refused applies a refusal the gate found.
func (g *httpGate) refused(h *policy.Hit) { g.g.applyHit(verdict.StageHit, g.pol, h, g.key) }

// expire bounds the wait for the server's answers once the client's
// stream was cut.
func (g *httpGate) expire() {
	if g.upstream != nil {
		_ = g.upstream.SetReadDeadline(time.Now().Add(refusalDrain))
	}
}

// inspect feeds data, the client's next bytes, request by request. It
// returns how many leading bytes may be forwarded and, when something
// refused, the hit: for a refused HTTP request, keep ends where that
// request's head starts (what comes before belongs to earlier, allowed
// requests); for a payload hit nothing of data is forwarded.
func (g *httpGate) inspect(data []byte) (keep int, h policy.Hit, hit bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	prev := 0
	for prev < len(data) {
		if g.in.Done() {
			return len(data), policy.Hit{}, false
		}
		end, start := len(data), -1
		if !g.trackDone {
			n, ev := g.track.Feed(data[prev:])
			switch ev.Kind {
			case l7.HTTPRequest:
				end = prev + n
				start = offsetIn(data, ev.Method)
			case l7.NotHTTP, l7.HTTPError:
				g.trackDone = true
			}
			if g.track.Opaque() {
				g.trackDone = true
			}
		}
		if h, hit = g.in.Feed(policy.ToServer, data[prev:end]); hit {
			if isPayloadHit(&h) {
				return 0, h, true
			}
			return max(start, prev), h, true
		}
		prev = end
	}
	return len(data), policy.Hit{}, false
}

// isPayloadHit: a pattern matched, rather than an HTTP request refused.
func isPayloadHit(h *policy.Hit) bool { return h.Decided() == policy.FieldPayload }

// offsetIn returns where sub starts in data, -1 when sub does not point
// into data (a head that began in earlier bytes).
func offsetIn(data, sub []byte) int {
	if len(sub) == 0 || len(data) == 0 {
		return -1
	}
	d := uintptr(unsafe.Pointer(unsafe.SliceData(data)))
	s := uintptr(unsafe.Pointer(unsafe.SliceData(sub)))
	if s < d || s >= d+uintptr(len(data)) {
		return -1
	}
	return int(s - d)
}

// gatedInspector is the relay's view of a gated flow's inspector: the
// client's direction was inspected by the gate already, the server's is
// fed here.
type gatedInspector struct{ g *httpGate }

func (w gatedInspector) Feed(dir policy.StreamDir, data []byte) (policy.Hit, bool) {
	if dir == policy.ToServer {
		return policy.Hit{}, false
	}
	w.g.mu.Lock()
	defer w.g.mu.Unlock()
	return w.g.in.Feed(dir, data)
}

func (w gatedInspector) Done() bool {
	w.g.mu.Lock()
	defer w.g.mu.Unlock()
	return w.g.in.Done()
}

// gatedRead is ClientConn.Read for a gated flow.
func (c *ClientConn) gatedRead(b []byte) (int, error) {
	g := c.gate
	if g.eof {
		return 0, io.EOF
	}
	n, err := c.TCPConn.Read(b)
	if n == 0 {
		return n, err
	}
	keep, h, hit := g.inspect(b[:n])
	if !hit {
		return n, err
	}
	g.refused(&h)
	c.refuseLater(h.Action, h.Reject)
	if isPayloadHit(&h) {
		return 0, errPayloadHit
	}
	// The client's stream ends before the refused request: the relay
	// half-closes the server's side and relays its answers to the
	// requests before it; Close then refuses the client.
	g.eof = true
	g.expire()
	if keep == 0 {
		return 0, io.EOF
	}
	return keep, nil
}
