package verdict

import (
	"context"
	"net/netip"
	"sync"

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
// flusher, which ends the flows off the packet path.
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

// queueFlushes asks the flusher to end the tracked flows of add_to
// addresses.
func (a *Applier) queueFlushes(reqs []policy.AddTo) {
	for _, r := range reqs {
		if !a.flushes.add(flushReq{addr: r.Addr.Unmap(), src: r.IsSrc}) {
			a.ctr.FlushesDropped.Add(1)
		}
	}
}

// runFlusher ends flows for queued flush requests until ctx is done.
func (a *Applier) runFlusher(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.flushes.wake:
			a.Flush()
		}
	}
}

// Flush serves every queued request now (Run does when one is queued):
// the matching flows' relays are ended (TCP: both peers reset; UDP:
// sockets closed) and the flows deleted, so their next packets find no
// flow. The records, not conntrack, are searched: they are the committed
// flows.
func (a *Applier) Flush() {
	for _, r := range a.flushes.drain() {
		victims := a.flows.matching(r.addr, r.src)
		for _, fl := range victims {
			fl.end()
			if a.ct.Delete(fl.key) {
				a.ctr.FlowsFlushed.Add(1)
			}
		}
		side := "dst"
		if r.src {
			side = "src"
		}
		a.log.Info("flows flushed", "addr", r.addr.String(), "key", side, "count", len(victims))
	}
}
