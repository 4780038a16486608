package relay

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tungate/tungate/policy"
)

// TCP copies client<->upstream until one of:
//   - both directions have ended: an EOF is passed on as a half-close, and
//     the other direction keeps flowing;
//   - one side fails: both are aborted, Err says why;
//   - ins reports a drop or reject hit: onHit is called once, then both are
//     aborted, Hit says which;
//   - ctx ends: both are aborted, Err is ctx.Err().
//
// Every chunk is inspected before it is forwarded, so the chunk that
// completes a match never reaches the other side. ins and onHit may be nil.
// Both connections are closed and every goroutine TCP started has ended
// when it returns.
func TCP(ctx context.Context, client, upstream Conn, ins Inspector, onHit HitHandler) Stats {
	r := &tcpRelay{client: client, upstream: upstream, onHit: onHit}
	if ins != nil && !inspectorDone(ins) {
		r.ins = ins
		r.inspecting.Store(true)
	}

	var st Stats
	// The server-bound pump runs in the caller's goroutine and only the
	// client-bound one gets its own; it ends when upstream ends or the relay
	// aborts, and TCP waits for it. ctx's end aborts both through AfterFunc
	// rather than a goroutine that watches ctx: an idle flow costs one
	// goroutine here, not three.
	stop := context.AfterFunc(ctx, func() { r.fail(ctx.Err()) })
	toClient := make(chan struct{})
	go func() {
		defer close(toClient)
		r.pump(policy.ToClient, upstream, client, &st.BytesToClient)
	}()
	r.pump(policy.ToServer, client, upstream, &st.BytesToServer)
	<-toClient
	stop()

	_ = client.Close()
	_ = upstream.Close()

	r.mu.Lock()
	st.Hit, st.Err = r.hit, r.err
	r.mu.Unlock()
	return st
}

// tcpRelay is the state one TCP call shares between its two pumps.
type tcpRelay struct {
	client, upstream Conn
	onHit            HitHandler

	inspecting atomic.Bool // false once ins is nil; lets a pump skip mu when nothing inspects

	mu      sync.Mutex // guards ins, hit, err, aborted; also serialises Feed, as an Inspector need not be safe for concurrent use
	ins     Inspector
	hit     *policy.Hit
	err     error
	aborted bool
}

// pump copies src to dst. A clean EOF half-closes dst and leaves the other
// direction running.
//
// It reads into a small buffer of its own until a read fills it, then into
// a pooled big one for as long as reads return more than the small buffer
// would have held; the first read that does not hands the big buffer back.
// So a busy flow moves data in big chunks, and an idle one waits holding
// only smallBufSize bytes.
func (r *tcpRelay) pump(dir policy.StreamDir, src, dst Conn, n *int64) {
	small := make([]byte, smallBufSize)
	var big *[]byte
	defer func() {
		if big != nil {
			bigBufPool.Put(big)
		}
	}()
	for {
		buf := small
		if big != nil {
			buf = *big
		}
		k, err := src.Read(buf)
		if k > 0 {
			if !r.feed(dir, buf[:k]) {
				return
			}
			if _, werr := dst.Write(buf[:k]); werr != nil {
				r.fail(werr)
				return
			}
			*n += int64(k)
		}
		switch {
		case big == nil && k == len(small):
			big = bigBufPool.Get().(*[]byte)
		case big != nil && k <= smallBufSize:
			bigBufPool.Put(big)
			big = nil
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				_ = dst.CloseWrite()
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
	// Every hit is terminal: an allow hit ends inspection, not the flow.
	r.stopInspectingLocked()
	if h.Action == policy.ActionAllow {
		return true
	}
	r.hit = new(policy.Hit) // not &h, which would move h to the heap on every call
	*r.hit = h
	if r.onHit != nil {
		r.onHit.OnHit(h)
	}
	r.abortLocked()
	return false
}

func (r *tcpRelay) stopInspectingLocked() {
	r.ins = nil
	r.inspecting.Store(false)
}

// fail ends the relay because of err, unless it already ended for another
// reason: then err is only fallout of that abort.
func (r *tcpRelay) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.aborted {
		return
	}
	r.err = err
	r.abortLocked()
}

// abortLocked resets both sides. The deadline in the past unblocks a pump
// even where an Abort does not interrupt pending I/O by itself.
func (r *tcpRelay) abortLocked() {
	if r.aborted {
		return
	}
	r.aborted = true
	past := time.Unix(1, 0)
	for _, c := range [2]Conn{r.client, r.upstream} {
		c.Abort()
		_ = c.SetDeadline(past)
	}
}
