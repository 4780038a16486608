package conntrack

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// EventType is a kind of flow event; values are bits so a subscription
// can ask for several.
type EventType uint8

const (
	EventNew     EventType = 1 << iota // Commit created the flow
	EventUpdate                        // TCP state change, assured, or a new verdict
	EventDestroy                       // the flow left the table
	EventAll     = EventNew | EventUpdate | EventDestroy
)

func (e EventType) String() string {
	switch e {
	case EventNew:
		return "new"
	case EventUpdate:
		return "update"
	case EventDestroy:
		return "destroy"
	}
	return "mixed"
}

// DestroyReason says why a flow left the table (EventDestroy only).
type DestroyReason uint8

const (
	reasonNone    DestroyReason = iota
	reasonExpired               // timed out
	reasonEvicted               // early drop or half-open eviction
	reasonDeleted               // Delete
	reasonClosed                // TCP reset before a reply, or replaced by a reopening SYN
)

// Exported names of the destroy reasons.
const (
	DestroyExpired = reasonExpired
	DestroyEvicted = reasonEvicted
	DestroyDeleted = reasonDeleted
	DestroyClosed  = reasonClosed
)

func (r DestroyReason) String() string {
	switch r {
	case reasonExpired:
		return "expired"
	case reasonEvicted:
		return "evicted"
	case reasonDeleted:
		return "deleted"
	case reasonClosed:
		return "closed"
	}
	return ""
}

// Event describes a flow at the moment something happened to it. It holds
// no pointers: a slow subscriber's buffer costs the collector nothing.
type Event struct {
	Type      EventType
	Reason    DestroyReason // EventDestroy only
	Orig      Key           // the flow's original direction; Reply() derives the other
	TCPState  TCPState      // TCPNone for other protocols
	Assured   bool
	SeenReply bool
	Verdict   Verdict
	Timeout   time.Duration // time left; 0 for EventDestroy
	Packets   [2]uint64     // indexed by Dir
	Bytes     [2]uint64
}

// Reply is the key of the flow's reply direction.
func (e *Event) Reply() Key { return replyKey(&e.Orig) }

// Subscription receives flow events. Its buffer is bounded; when it is
// full, events are dropped and counted in Missed, so the packet path never
// waits for a subscriber.
type Subscription struct {
	hub  *eventHub
	mask EventType
	ch   chan Event
	// mu orders sends against Close: emitters hold it shared while they
	// send, Close exclusively while it closes ch. It guards closed.
	mu     sync.RWMutex
	closed bool
	missed atomic.Uint64
}

// C delivers the events. It is closed by Close.
func (s *Subscription) C() <-chan Event { return s.ch }

// Missed is the number of events dropped because the buffer was full.
func (s *Subscription) Missed() uint64 { return s.missed.Load() }

// Close ends the subscription and closes C. It is idempotent.
func (s *Subscription) Close() {
	s.hub.remove(s)
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.ch)
	}
	s.mu.Unlock()
}

// eventHub fans events out to subscribers. The packet path loads one
// atomic pointer when nobody subscribes.
type eventHub struct {
	mu   sync.Mutex // serialises changes of subs
	subs atomic.Pointer[[]*Subscription]
}

func (h *eventHub) active() bool { return h.subs.Load() != nil }

// Subscribers is the number of open subscriptions.
func (t *Table) Subscribers() int {
	if p := t.ev.subs.Load(); p != nil {
		return len(*p)
	}
	return 0
}

// Subscribe starts delivering the events in mask to a new subscription
// with a buffer of buf events (at least 1).
func (t *Table) Subscribe(buf int, mask EventType) *Subscription {
	s := &Subscription{hub: &t.ev, mask: mask, ch: make(chan Event, max(1, buf))}
	h := &t.ev
	h.mu.Lock()
	var cur []*Subscription
	if p := h.subs.Load(); p != nil {
		cur = *p
	}
	next := append(slices.Clip(cur), s)
	h.subs.Store(&next)
	h.mu.Unlock()
	return s
}

func (h *eventHub) remove(s *Subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.subs.Load()
	if p == nil {
		return
	}
	next := slices.DeleteFunc(slices.Clone(*p), func(x *Subscription) bool { return x == s })
	if len(next) == 0 {
		h.subs.Store(nil)
	} else {
		h.subs.Store(&next)
	}
}

// emit sends an event about e to every interested subscriber without
// blocking. Called with e's shard lock held; now is for Timeout (ignored
// for EventDestroy).
func (h *eventHub) emit(t *Table, typ EventType, e *entry, why DestroyReason, now int64) {
	p := h.subs.Load()
	if p == nil {
		return
	}
	ev := Event{
		Type:      typ,
		Reason:    why,
		Orig:      e.key,
		Assured:   e.flags&eAssured != 0,
		SeenReply: e.flags&eSeenReply != 0,
		Verdict:   e.verdict,
		Packets:   e.packets,
		Bytes:     e.bytes,
	}
	if e.key.Proto == protoTCP {
		ev.TCPState = e.tcp
	}
	if typ != EventDestroy {
		ev.Timeout = time.Duration(max(0, e.deadline-now))
	}
	for _, s := range *p {
		if s.mask&typ == 0 {
			continue
		}
		s.mu.RLock()
		if !s.closed {
			select {
			case s.ch <- ev:
			default:
				s.missed.Add(1)
			}
		}
		s.mu.RUnlock()
	}
}
