package stack

import (
	"context"
	"net/netip"
	"sync"

	"github.com/tungate/tungate/conntrack"
	"github.com/tungate/tungate/policy"
)

// maxFlushQueue bounds the add_to flush requests waiting for the flusher;
// more are refused and counted (FlushesDropped). Requests for the same
// address coalesce, so only that many distinct addresses banned within one
// pass of the flusher could overflow it.
const maxFlushQueue = 1024

// flushReq asks to end every tracked flow of addr: those it opened (src)
// or those opened to it.
type flushReq struct {
	addr netip.Addr
	src  bool
}

// flushQueue hands add_to flush_flows requests from the packet path to the
// flusher, which walks conntrack off the packet path.
type flushQueue struct {
	mu   sync.Mutex // guards reqs
	reqs map[flushReq]struct{}
	wake chan struct{} // capacity 1: a pending wake-up
}

func newFlushQueue() *flushQueue {
	return &flushQueue{reqs: make(map[flushReq]struct{}), wake: make(chan struct{}, 1)}
}

// add queues a request; false when the queue is full.
func (q *flushQueue) add(r flushReq) bool {
	q.mu.Lock()
	_, dup := q.reqs[r]
	if !dup && len(q.reqs) >= maxFlushQueue {
		q.mu.Unlock()
		return false
	}
	q.reqs[r] = struct{}{}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return true
}

// drain takes every queued request.
func (q *flushQueue) drain() []flushReq {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.reqs) == 0 {
		return nil
	}
	out := make([]flushReq, 0, len(q.reqs))
	for r := range q.reqs {
		out = append(out, r)
	}
	clear(q.reqs)
	return out
}

// queueFlush asks the flusher to end the tracked flows of an add_to
// address.
func (s *Stack) queueFlush(a policy.AddTo) {
	if !s.flushes.add(flushReq{addr: a.Addr.Unmap(), src: a.IsSrc}) {
		s.ctr.flushesDropped.Add(1)
	}
}

// runFlusher ends flows for queued flush requests until ctx is done. It is
// owned by Run.
func (s *Stack) runFlusher(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.flushes.wake:
			s.flushNow()
		}
	}
}

// flushNow serves every queued request with one walk over conntrack:
// matching flows are deleted and their relays ended (TCP: both peers
// reset; UDP: sockets closed), so their next packets find no flow.
func (s *Stack) flushNow() {
	reqs := s.flushes.drain()
	if len(reqs) == 0 {
		return
	}
	ended := make(map[flushReq]int, len(reqs))
	var victims []conntrack.Key
	s.ct.Range(func(fi conntrack.FlowInfo) bool {
		for _, r := range reqs {
			if keyAddr(&fi.Orig, r.src) == r.addr {
				victims = append(victims, fi.Orig)
				ended[r]++
				break
			}
		}
		return true
	})
	for i := range victims {
		s.flowReg.end(victims[i])
		if s.ct.Delete(victims[i]) {
			s.ctr.flowsFlushed.Add(1)
		}
	}
	for _, r := range reqs {
		side := "dst"
		if r.src {
			side = "src"
		}
		s.log.Info("flows flushed", "addr", r.addr.String(), "key", side, "count", ended[r])
	}
}
