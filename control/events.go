package control

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/tungate/tungate/conntrack"
)

// OpConntrackEvents streams flow events (new, update, destroy) as they
// happen, filtered like OpConntrackList, until the client goes away: the
// `conntrack -E` of tungate.
const OpConntrackEvents = "conntrack.events"

// Event feed limits: a feed holds one of the server's MaxConns
// connections, so only a few may run at once; each has a bounded buffer
// and reports what it missed rather than slowing the packet path.
const (
	maxEventFeeds = 2
	eventBuffer   = 4096
)

// ErrTooManyFeeds refuses an event feed beyond maxEventFeeds.
var ErrTooManyFeeds = errors.New("too many event feeds are open (at most " + strconv.Itoa(maxEventFeeds) + ")")

// FlowEvent is one element of the event feed.
type FlowEvent struct {
	Type   string `json:"type"`             // new, update or destroy
	Reason string `json:"reason,omitempty"` // destroy: expired, evicted, deleted or closed
	Flow   Flow   `json:"flow"`
	// Missed is the number of events (of any flow, before the filter)
	// dropped since the previous event because the feed's buffer was full:
	// a reader slower than the traffic.
	Missed uint64 `json:"missed,omitempty"`
}

// AppendText appends e as one line in the style of `conntrack -E`:
//
//	[NEW] tcp      6 120 SYN_SENT src=… [UNREPLIED] src=… rule=NAME
//	[DESTROY] tcp      6 0 CLOSE src=… [ASSURED] rule=NAME reason=closed
func (e *FlowEvent) AppendText(b []byte) []byte {
	b = append(b, '[')
	for _, c := range e.Type {
		b = append(b, byte(c)&^0x20) // ASCII upper case
	}
	b = append(b, "] "...)
	b = e.Flow.AppendText(b)
	if e.Reason != "" {
		b = append(b, " reason="...)
		b = append(b, e.Reason...)
	}
	return b
}

// feedKeepalive is how often an idle feed checks, by writing a newline,
// that its client is still there; a feed whose client went away ends by
// then, releasing its subscription and connection.
const feedKeepalive = 2 * time.Second

// eventFeed serves OpConntrackEvents for b; feeds counts the open ones.
func eventFeed(b Backend, feeds *atomic.Int32) HandlerFunc {
	return func(ctx context.Context, raw json.RawMessage) (any, error) {
		m, err := decodeFilter(raw)
		if err != nil {
			return nil, err
		}
		if feeds.Add(1) > maxEventFeeds {
			feeds.Add(-1)
			return nil, ErrTooManyFeeds
		}
		// Subscribed before the response starts, so nothing that happens
		// once the client has its answer is lost. The server always runs
		// the stream it is handed, which releases both.
		sub := b.Conntrack().Subscribe(eventBuffer, conntrack.EventAll)
		return LiveStream(func(emit func(any) error) error {
			defer feeds.Add(-1)
			defer sub.Close()
			keepalive := time.NewTicker(feedKeepalive)
			defer keepalive.Stop()
			var reported uint64
			for {
				select {
				case <-ctx.Done():
					return nil // the gateway stops
				case <-keepalive.C:
					if err := emit(nil); err != nil {
						return err // the client went away
					}
				case ev := <-sub.C():
					fe := FlowEvent{Type: ev.Type.String(), Flow: flowFromEvent(&ev, b)}
					if !m.matches(&fe.Flow) {
						continue
					}
					if ev.Type == conntrack.EventDestroy {
						fe.Reason = ev.Reason.String()
					}
					if missed := sub.Missed(); missed > reported {
						fe.Missed, reported = missed-reported, missed
					}
					if err := emit(fe); err != nil {
						return err
					}
				}
			}
		}), nil
	}
}

// flowFromEvent describes the flow an event is about as the listing does
// (without window state, which events do not carry).
func flowFromEvent(ev *conntrack.Event, b Backend) Flow {
	fi := conntrack.FlowInfo{
		Orig: ev.Orig, Reply: ev.Reply(), Proto: ev.Orig.Proto, Timeout: ev.Timeout,
		Packets: ev.Packets, Bytes: ev.Bytes, Assured: ev.Assured, SeenReply: ev.SeenReply,
		Verdict: ev.Verdict,
	}
	if ev.Orig.Proto == 6 {
		fi.TCPState = ev.TCPState.String()
	}
	f := FlowFrom(fi, b.Policy())
	f.Orig.Window, f.Reply.Window = nil, nil
	return f
}
