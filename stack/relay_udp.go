package stack

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// udpBufSize holds the largest UDP payload, so no datagram is truncated.
const udpBufSize = 64 << 10

var udpBufPool = sync.Pool{New: func() any { b := make([]byte, udpBufSize); return &b }}

// udpRelay is the shared state of one relayUDP call.
type udpRelay struct {
	client, upstream net.Conn
	idle             time.Duration
	start            time.Time    // monotonic base for last
	last             atomic.Int64 // time since start of the latest datagram, either direction

	mu      sync.Mutex // guards err, stopped
	err     error
	stopped bool
}

// relayUDP copies datagrams client<->upstream, one Read to one Write, until
// no datagram has passed in either direction for idle, or ctx ends, or a
// side fails. Both connections are closed and all goroutines have ended when
// it returns. An idle end is clean (Err nil).
func relayUDP(ctx context.Context, client, upstream net.Conn, idle time.Duration) RelayStats {
	if idle <= 0 {
		idle = 60 * time.Second
	}
	r := &udpRelay{client: client, upstream: upstream, idle: idle, start: time.Now()}

	var st RelayStats
	var wg sync.WaitGroup
	wg.Add(2)
	// Both pumps are owned by this call; each ends on idle, error or stop.
	go func() { defer wg.Done(); r.pump(client, upstream, &st.BytesToServer, &st.PacketsToServer) }()
	go func() { defer wg.Done(); r.pump(upstream, client, &st.BytesToClient, &st.PacketsToClient) }()
	done := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-ctx.Done():
			r.stop(ctx.Err())
		case <-done:
		}
	}()
	wg.Wait()
	close(done)
	<-watched

	r.stop(nil)
	r.mu.Lock()
	st.Err = r.err
	r.mu.Unlock()
	return st
}

func (r *udpRelay) pump(src, dst net.Conn, bytes, pkts *int64) {
	bp := udpBufPool.Get().(*[]byte)
	defer udpBufPool.Put(bp)
	buf := *bp
	// The deadline is only moved when it fires: per-datagram cost stays one
	// clock read and an atomic store.
	_ = src.SetReadDeadline(r.start.Add(time.Duration(r.last.Load()) + r.idle))
	for {
		n, err := src.Read(buf)
		if err != nil {
			if isTimeout(err) {
				if r.isStopped() {
					return
				}
				deadline := r.start.Add(time.Duration(r.last.Load()) + r.idle)
				if time.Until(deadline) > 0 {
					_ = src.SetReadDeadline(deadline)
					continue
				}
				r.stop(nil)
				return
			}
			// A connected UDP socket reports an earlier ICMP port unreachable
			// on the next call; the flow itself goes on, as without a gateway.
			if errors.Is(err, syscall.ECONNREFUSED) {
				continue
			}
			r.stop(err)
			return
		}
		r.last.Store(int64(time.Since(r.start)))
		if _, err := dst.Write(buf[:n]); err != nil {
			if errors.Is(err, syscall.ECONNREFUSED) {
				continue
			}
			r.stop(err)
			return
		}
		*bytes += int64(n)
		*pkts++
	}
}

func (r *udpRelay) isStopped() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stopped
}

// stop ends the relay; the first call records the cause. Closing both sides
// unblocks the pumps.
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
