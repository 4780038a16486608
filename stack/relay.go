package stack

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tungate/tungate/policy"
)

// HalfConn is a stream that can be shut down one direction at a time, as
// both gonet.TCPConn (client side) and *net.TCPConn (upstream side) can.
type HalfConn interface {
	net.Conn
	CloseWrite() error
	CloseRead() error
}

// Stream is one side of a relayed TCP flow. Abort must reset the connection
// (RST, not FIN) and must tolerate a later Conn.Close. A nil Abort falls back
// to Conn.Close.
type Stream struct {
	Conn  HalfConn
	Abort func()
}

// upstreamStream wraps an egress socket: SO_LINGER 0 turns Close into a RST.
func upstreamStream(c *net.TCPConn) Stream {
	return Stream{Conn: c, Abort: func() {
		_ = c.SetLinger(0)
		_ = c.Close()
	}}
}

// RelayStats is what a relay did, for conntrack counters and logs.
type RelayStats struct {
	BytesToServer, BytesToClient     int64
	PacketsToServer, PacketsToClient int64       // datagrams (UDP relay only)
	Hit                              *policy.Hit // the drop/reject payload hit that ended the flow
	Err                              error       // first cause of an abnormal end (I/O error, ctx.Err()); nil for a clean end or a hit
}

// streamInspector is what the relay needs of *policy.Inspector; tests feed
// it fakes. A value that also has Done() bool (as *policy.Inspector has, true
// for a nil pointer) is dropped as soon as Done reports true.
type streamInspector interface {
	Feed(dir policy.StreamDir, data []byte) (policy.Hit, bool)
}

type doner interface{ Done() bool }

var (
	_ streamInspector = (*policy.Inspector)(nil)
	_ doner           = (*policy.Inspector)(nil)
)

// relayBufSize is one read's worth of stream data while a flow is busy;
// also the largest chunk an inspector sees at once.
const relayBufSize = 64 << 10

// relaySmallSize is the buffer a pump waits with. A blocking Read holds
// its buffer for as long as the flow is idle, so an idle flow must not
// hold a big one: 10,000 idle connections would pin 2 x 10,000 of them.
// 256 bytes (not 1 KiB) takes 15 MiB off 10,000 idle flows; a busy flow
// pays one short read before it switches to the big buffer.
const relaySmallSize = 256

var relayBufPool = sync.Pool{New: func() any { b := make([]byte, relayBufSize); return &b }}

// tcpRelay is the shared state of one relayTCP call.
type tcpRelay struct {
	client, upstream Stream

	inspecting atomic.Bool // fast path: false once ins is nil, read without mu

	mu      sync.Mutex // guards ins, hit, err, aborted; serialises Feed (Inspector is not concurrency-safe)
	ins     streamInspector
	hit     *policy.Hit
	err     error
	aborted bool

	onHit func(policy.Hit) // called once, under mu, before the aborts
}

// relayTCP copies client<->upstream until both directions have ended (EOF
// propagates as a half-close), one side fails (the other is aborted), a
// drop/reject payload hit (onHit called once, then both aborted) or ctx ends
// (both aborted). onHit runs before the resets go out so the verdict is
// cached and logged by the time either peer can observe the teardown. Every chunk is inspected before it is forwarded, so the chunk
// that completes a match never reaches the other side. Both connections are
// closed and all goroutines have ended when it returns.
func relayTCP(ctx context.Context, client, upstream Stream, ins streamInspector, onHit func(policy.Hit)) RelayStats {
	r := &tcpRelay{client: client, upstream: upstream, onHit: onHit}
	if ins != nil && !inspectorDone(ins) {
		r.ins = ins
		r.inspecting.Store(true)
	}

	var st RelayStats
	// The server-bound pump runs in the caller's goroutine and the
	// client-bound one in its own (owned by this call, ends when its
	// source ends or the relay aborts); ctx's end aborts both through
	// AfterFunc instead of a watching goroutine: an idle flow costs one
	// goroutine here, not three.
	stop := context.AfterFunc(ctx, func() { r.fail(ctx.Err()) })
	toClient := make(chan struct{})
	go func() { defer close(toClient); r.pump(policy.ToClient, upstream, client, &st.BytesToClient) }()
	r.pump(policy.ToServer, client, upstream, &st.BytesToServer)
	<-toClient
	stop()

	_ = client.Conn.Close()
	_ = upstream.Conn.Close()

	r.mu.Lock()
	st.Hit, st.Err = r.hit, r.err
	r.mu.Unlock()
	return st
}

// pump copies src to dst. A clean EOF half-closes dst and leaves the other
// direction running.
//
// It reads into a small buffer of its own until a read fills it, then into
// a pooled big one for as long as reads keep returning more than the small
// buffer would have held; the first read that does not hands the big
// buffer back. So a busy flow moves data in big chunks, and an idle one
// waits holding only relaySmallSize bytes.
func (r *tcpRelay) pump(dir policy.StreamDir, src, dst Stream, n *int64) {
	small := make([]byte, relaySmallSize)
	var big *[]byte
	defer func() {
		if big != nil {
			relayBufPool.Put(big)
		}
	}()
	for {
		buf := small
		if big != nil {
			buf = *big
		}
		k, err := src.Conn.Read(buf)
		if k > 0 {
			if !r.feed(dir, buf[:k]) {
				return
			}
			if _, werr := dst.Conn.Write(buf[:k]); werr != nil {
				r.fail(werr)
				return
			}
			*n += int64(k)
		}
		switch {
		case big == nil && k == len(small):
			big = relayBufPool.Get().(*[]byte)
		case big != nil && k <= relaySmallSize:
			relayBufPool.Put(big)
			big = nil
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				_ = dst.Conn.CloseWrite()
				return
			}
			r.fail(err)
			return
		}
	}
}

// feed inspects a chunk and reports whether it may be forwarded.
func (r *tcpRelay) feed(dir policy.StreamDir, b []byte) bool {
	if !r.inspecting.Load() {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.aborted {
		return false
	}
	if r.ins == nil {
		return true
	}
	h, ok := r.ins.Feed(dir, b)
	if !ok {
		if inspectorDone(r.ins) {
			r.stopInspectingLocked()
		}
		return true
	}
	r.stopInspectingLocked()
	if h.Action == policy.ActionAllow {
		return true
	}
	r.hit = new(policy.Hit) // not &h: that would move h to the heap on every call
	*r.hit = h
	if r.onHit != nil {
		r.onHit(h)
	}
	r.abortLocked()
	return false
}

func (r *tcpRelay) stopInspectingLocked() {
	r.ins = nil
	r.inspecting.Store(false)
}

// fail ends the relay because of err, unless it already ended for another
// reason (then err is just fallout of that abort).
func (r *tcpRelay) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.aborted {
		return
	}
	r.err = err
	r.abortLocked()
}

// abortLocked resets both sides. The past deadline unblocks a pump even if an
// Abort implementation does not interrupt pending I/O by itself.
func (r *tcpRelay) abortLocked() {
	if r.aborted {
		return
	}
	r.aborted = true
	past := time.Unix(1, 0)
	for _, s := range [2]Stream{r.client, r.upstream} {
		if s.Abort != nil {
			s.Abort()
		} else {
			_ = s.Conn.Close()
		}
		_ = s.Conn.SetDeadline(past)
	}
}

func inspectorDone(ins streamInspector) bool {
	d, ok := ins.(doner)
	return ok && d.Done()
}
