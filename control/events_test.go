package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tungate/tungate/conntrack"
)

// follow starts a feed with filter and returns its events as they come;
// stop ends it and waits for the client to return.
func follow(t *testing.T, c Client, filter any) (events <-chan FlowEvent, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan FlowEvent, 64)
	done := make(chan error, 1)
	go func() { // owned by the test: ends when stop cancels ctx
		done <- c.Follow(ctx, OpConntrackEvents, filter, func(dec *json.Decoder) error {
			var ev FlowEvent
			if err := dec.Decode(&ev); err != nil {
				return err
			}
			ch <- ev
			return nil
		})
		close(ch)
	}()
	return ch, func() error { cancel(); return <-done }
}

func nextEvent(t *testing.T, ch <-chan FlowEvent) FlowEvent {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("the feed ended")
		}
		return ev
	case <-time.After(waitMax):
		t.Fatal("no event")
	}
	return FlowEvent{}
}

func TestOpsEvents(t *testing.T) {
	b, c := newOpsServer(t)
	events, stop := follow(t, c, FlowFilter{Proto: "udp"})
	// The feed is subscribed once the server flushed the opening of the
	// response; until then events would not be seen. Wait for it.
	waitFor(t, "the feed to subscribe", func() bool { return feedsOpen(b) == 1 })

	fillTable(t, b.t, b.p) // a TCP flow (filtered out) and a UDP one
	ev := nextEvent(t, events)
	if ev.Type != "new" || ev.Flow.Proto != "udp" || ev.Flow.Rule != "ctl-allow-dns" || ev.Flow.Orig.SrcPort != dnsClient.Port() || ev.Missed != 0 {
		t.Fatalf("first event %+v, want the UDP flow's new", ev)
	}
	if !b.t.Delete(mkKey(17, dnsClient, dnsServer)) {
		t.Fatal("delete")
	}
	ev = nextEvent(t, events)
	if ev.Type != "destroy" || ev.Reason != "deleted" || ev.Flow.Proto != "udp" {
		t.Fatalf("second event %+v, want the UDP flow's destroy", ev)
	}
	if line := string(ev.AppendText(nil)); line[:10] != "[DESTROY] " || line[len(line)-15:] != " reason=deleted" {
		t.Errorf("text %q", line)
	}
	if err := stop(); err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("feed ended with %v", err)
	}
	// A client going away ends its feed in the gateway, even with no
	// event to write.
	waitFor(t, "the feed to end in the gateway", func() bool { return feedsOpen(b) == 0 })
}

func TestOpsEventFeedLimit(t *testing.T) {
	b, c := newOpsServer(t)
	var stops []func() error
	for range maxEventFeeds {
		_, stop := follow(t, c, nil)
		stops = append(stops, stop)
	}
	waitFor(t, "the feeds to open", func() bool { return feedsOpen(b) == maxEventFeeds })
	ctx, cancel := context.WithTimeout(context.Background(), waitMax)
	defer cancel()
	err := c.Follow(ctx, OpConntrackEvents, nil, func(*json.Decoder) error { return nil })
	var re *RemoteError
	if !errors.As(err, &re) || re.Msg != ErrTooManyFeeds.Error() {
		t.Errorf("a feed over the limit: %v", err)
	}
	for _, stop := range stops {
		stop()
	}
	waitFor(t, "the feeds to end", func() bool { return feedsOpen(b) == 0 })
	if _, err := listFiltered(t, c, nil); err != nil {
		t.Errorf("listing after the feeds: %v", err)
	}
}

// feedsOpen is the number of event subscriptions on b's table.
func feedsOpen(b *fakeBackend) int { return b.t.Subscribers() }

// waitFor polls cond until it holds, failing after waitMax.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(waitMax); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestHalfClosedClientGetsEverything: a client that ends its side after
// the request (socat, nc -N) still gets a whole long listing.
func TestHalfClosedClientGetsEverything(t *testing.T) {
	b, c := newOpsServer(t)
	const n = 3000
	for i := range n {
		src := netip.AddrFrom4([4]byte{198, 18, byte(1 + i/250), byte(1 + i%250)}) // under the per-source limits
		k := mkKey(17, netip.AddrPortFrom(src, 5353), webServer)
		p := &conntrack.Packet{Key: k, Len: 80}
		b.t.Track(p)
		if err := b.t.Commit(p, conntrack.Verdict{}); err != nil {
			t.Fatal(err)
		}
	}
	r := rawCall(t, c.Path, []byte(`{"v":1,"op":"conntrack.list"}`+"\n"))
	var flows []json.RawMessage
	if err := json.Unmarshal(r.Data, &flows); !r.OK || err != nil || len(flows) != n {
		t.Fatalf("listing for a half-closed client: ok=%v err=%q, %d flows (%v), want %d", r.OK, r.Error, len(flows), err, n)
	}
}

// TestFeedClientGoneAtOnce: clients that ask for a feed and leave before
// reading anything do not use up the feeds.
func TestFeedClientGoneAtOnce(t *testing.T) {
	b, c := newOpsServer(t)
	for range 2 * maxEventFeeds {
		conn, err := net.Dial("unix", c.Path)
		if err != nil {
			t.Fatal(err)
		}
		conn.Write([]byte(`{"v":2,"op":"conntrack.events"}` + "\n"))
		conn.Close()
	}
	// The first maxEventFeeds requests start feeds (the rest are refused);
	// each ends at its first keepalive, which finds the client gone.
	waitFor(t, "the abandoned feeds to start", func() bool { return feedsOpen(b) == maxEventFeeds })
	waitFor(t, "the abandoned feeds to end", func() bool { return feedsOpen(b) == 0 })
	events, stop := follow(t, Client{Path: c.Path, V: Version}, nil)
	waitFor(t, "a new feed", func() bool { return feedsOpen(b) == 1 })
	fillTable(t, b.t, b.p)
	if ev := nextEvent(t, events); ev.Type != "new" {
		t.Errorf("event %+v", ev)
	}
	stop()
}

// TestVersionNegotiation: requests go out in version 1 unless the client
// needs version 2, the gateway answers in the request's version, and a
// gateway that refuses the version is reported in its own words.
func TestVersionNegotiation(t *testing.T) {
	_, c := newOpsServer(t)
	for _, v := range []int{0, MinVersion, Version} {
		cl := Client{Path: c.Path, V: v}
		var st Stats
		if err := cl.Call(context.Background(), OpConntrackStats, nil, &st); err != nil {
			t.Errorf("version %d: %v", v, err)
		}
	}
	// An older gateway: it speaks only version 1.
	path := filepath.Join(t.TempDir(), "old.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // ends when ln is closed
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			bufio.NewReader(conn).ReadBytes('\n')
			conn.Write([]byte(`{"v":1,"ok":false,"error":"unsupported protocol version 2 (this gateway speaks 1)"}` + "\n"))
			conn.Close()
		}
	}()
	err = Client{Path: path, V: Version}.Call(context.Background(), OpConntrackFlush, FlowFilter{Proto: "tcp"}, nil)
	var re *RemoteError
	if !errors.As(err, &re) || !strings.Contains(re.Msg, "unsupported protocol version 2") {
		t.Errorf("an older gateway's refusal: %v", err)
	}
}
