package relay

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// defaultIdle ends a UDP flow when its caller gave no idle timeout.
const defaultIdle = 60 * time.Second

// Refusals learns that the upstream side was answered with an ICMP port
// unreachable (a connected UDP socket reports it as ECONNREFUSED on its
// next call), so the client can be told as it would be without a gateway.
type Refusals interface {
	OnRefused()
}

// UDP copies datagrams client<->upstream, one Read to one Write, so
// datagram boundaries survive, until no datagram has passed in either
// direction for idle (<= 0: one minute), ctx ends, or a side fails. An
// idle end is clean: Err is nil. An upstream refusal does not end the flow
// (the server may open the port); refused, when not nil, hears of each.
// Both connections are closed and every goroutine UDP started has ended
// when it returns.
func UDP(ctx context.Context, client, upstream net.Conn, idle time.Duration, refused Refusals) Stats {
	if idle <= 0 {
		idle = defaultIdle
	}
	r := &udpRelay{client: client, upstream: upstream, idle: idle, start: time.Now(), refused: refused}

	var st Stats
	var wg sync.WaitGroup
	wg.Add(2)
	// Each pump ends on idle, on an error, or when stop closes its source;
	// UDP waits for both.
	go func() {
		defer wg.Done()
		r.pump(client, upstream, &st.BytesToServer, &st.PacketsToServer)
	}()
	go func() {
		defer wg.Done()
		r.pump(upstream, client, &st.BytesToClient, &st.PacketsToClient)
	}()
	// The watcher ends when ctx does or when both pumps have; UDP waits
	// for it too.
	pumped := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-ctx.Done():
			r.stop(ctx.Err())
		case <-pumped:
		}
	}()
	wg.Wait()
	close(pumped)
	<-watched

	r.stop(nil)
	r.mu.Lock()
	st.Err = r.err
	r.mu.Unlock()
	return st
}

// udpRelay is the state one UDP call shares between its pumps.
type udpRelay struct {
	client, upstream net.Conn
	idle             time.Duration
	start            time.Time    // monotonic base of last
	last             atomic.Int64 // time from start to the latest datagram, either direction
	refused          Refusals     // nil: refusals are only skipped

	mu      sync.Mutex // guards err, stopped
	err     error
	stopped bool
}

func (r *udpRelay) pump(src, dst net.Conn, bytes, pkts *int64) {
	bp := datagramBufPool.Get().(*[]byte)
	defer datagramBufPool.Put(bp)
	buf := *bp
	// The read deadline is moved only when it fires, not per datagram:
	// a datagram costs one clock read and an atomic store, and the traffic
	// of the other direction keeps this one alive too.
	_ = src.SetReadDeadline(r.idleDeadline())
	for {
		n, err := src.Read(buf)
		if err != nil {
			if isTimeout(err) {
				if r.isStopped() {
					return
				}
				if d := r.idleDeadline(); time.Until(d) > 0 {
					_ = src.SetReadDeadline(d)
					continue
				}
				r.stop(nil)
				return
			}
			// A connected UDP socket reports an earlier ICMP port
			// unreachable on its next call; the flow itself goes on, as it
			// would without a gateway in between.
			if errors.Is(err, syscall.ECONNREFUSED) {
				r.wasRefused(src)
				continue
			}
			r.stop(err)
			return
		}
		r.last.Store(int64(time.Since(r.start)))
		if _, err := dst.Write(buf[:n]); err != nil {
			if errors.Is(err, syscall.ECONNREFUSED) {
				r.wasRefused(dst)
				continue
			}
			r.stop(err)
			return
		}
		*bytes += int64(n)
		*pkts++
	}
}

// idleDeadline is when the flow goes idle unless another datagram passes.
func (r *udpRelay) idleDeadline() time.Time {
	return r.start.Add(time.Duration(r.last.Load()) + r.idle)
}

// wasRefused passes on a refusal c reported, when c is the upstream side.
func (r *udpRelay) wasRefused(c net.Conn) {
	if c == r.upstream && r.refused != nil {
		r.refused.OnRefused()
	}
}

func (r *udpRelay) isStopped() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stopped
}

// stop ends the relay; the first call records the cause. Closing both
// sides unblocks the pumps.
func (r *udpRelay) stop(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return
	}
	r.stopped = true
	r.err = err
	_ = r.client.Close()
	_ = r.upstream.Close()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
