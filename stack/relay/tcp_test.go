package relay

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/tungate/tungate/internal/testenv"

	"github.com/tungate/tungate/policy"
)

// hitRecorder is a HitHandler that remembers every call.
type hitRecorder struct {
	mu   sync.Mutex // guards hits
	hits []policy.Hit
}

func (h *hitRecorder) OnHit(hit policy.Hit) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.hits = append(h.hits, hit)
}

func (h *hitRecorder) got() []policy.Hit {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]policy.Hit(nil), h.hits...)
}

// tcpEnv is client app <-> [client side | TCP | upstream side] <-> server app.
type tcpEnv struct {
	app, srv *net.TCPConn // the two applications' sockets
	result   chan Stats
	cancel   context.CancelFunc
}

// startTCP runs TCP between two loopback pairs, in a goroutine that ends
// when TCP returns.
func startTCP(t testing.TB, ins Inspector, onHit HitHandler) *tcpEnv {
	t.Helper()
	app, cside := tcpPair(t)
	uside, srv := tcpPair(t)
	ctx, cancel := context.WithCancel(context.Background())
	e := &tcpEnv{app: app, srv: srv, result: make(chan Stats, 1), cancel: cancel}
	t.Cleanup(func() {
		cancel()
		app.Close()
		srv.Close()
	})
	go func() { e.result <- TCP(ctx, Upstream(cside), Upstream(uside), ins, onHit) }()
	return e
}

func (e *tcpEnv) wait(t testing.TB) Stats {
	t.Helper()
	select {
	case st := <-e.result:
		return st
	case <-time.After(30 * time.Second): // liveness guard, not a timing assertion
		t.Fatal("TCP did not return")
		return Stats{}
	}
}

func TestTCPIntegrity(t *testing.T) {
	testenv.NoLeak(t)
	e := startTCP(t, nil, nil)
	up := make([]byte, 5<<20+123)
	down := make([]byte, 3<<20+7)
	rand.Read(up)
	rand.Read(down)

	var wg sync.WaitGroup
	var gotUp, gotDown []byte
	var errUp, errDown error
	wg.Add(4)
	go func() { defer wg.Done(); _, _ = e.app.Write(up); _ = e.app.CloseWrite() }()
	go func() { defer wg.Done(); _, _ = e.srv.Write(down); _ = e.srv.CloseWrite() }()
	go func() { defer wg.Done(); gotUp, errUp = io.ReadAll(e.srv) }()
	go func() { defer wg.Done(); gotDown, errDown = io.ReadAll(e.app) }()
	wg.Wait()
	if errUp != nil || errDown != nil {
		t.Fatalf("read errors: got %v, %v; want nil, nil", errUp, errDown)
	}
	if sha256.Sum256(gotUp) != sha256.Sum256(up) {
		t.Errorf("client->server: got %d bytes whose sha256 differs; want the %d sent", len(gotUp), len(up))
	}
	if sha256.Sum256(gotDown) != sha256.Sum256(down) {
		t.Errorf("server->client: got %d bytes whose sha256 differs; want the %d sent", len(gotDown), len(down))
	}
	st := e.wait(t)
	if st.Err != nil || st.Hit != nil {
		t.Errorf("got err=%v hit=%v; want a clean end", st.Err, st.Hit)
	}
	if st.BytesToServer != int64(len(up)) || st.BytesToClient != int64(len(down)) {
		t.Errorf("bytes to server/client: got %d/%d; want %d/%d", st.BytesToServer, st.BytesToClient, len(up), len(down))
	}
}

func TestTCPHalfClose(t *testing.T) {
	for _, tc := range []struct {
		name        string
		clientFirst bool
	}{
		{"client-closes-first", true},
		{"server-closes-first", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testenv.NoLeak(t)
			e := startTCP(t, nil, nil)
			closer, other := e.srv, e.app
			if tc.clientFirst {
				closer, other = e.app, e.srv
			}
			if _, err := closer.Write([]byte("request")); err != nil {
				t.Fatal(err)
			}
			if err := closer.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(other)
			if err != nil || string(got) != "request" {
				t.Fatalf("peer of the closing side: got %q, %v; want request + EOF", got, err)
			}
			// The other direction must still flow after the half-close.
			reply := bytes.Repeat([]byte("late reply "), 10000)
			if _, err := other.Write(reply); err != nil {
				t.Fatalf("write after half-close: got %v; want nil", err)
			}
			if err := other.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			got, err = io.ReadAll(closer)
			if err != nil || !bytes.Equal(got, reply) {
				t.Fatalf("half-closed side: got %d bytes, %v; want %d + EOF", len(got), err, len(reply))
			}
			if st := e.wait(t); st.Err != nil || st.Hit != nil {
				t.Errorf("got err=%v hit=%v; want a clean end", st.Err, st.Hit)
			}
		})
	}
}

func TestTCPSplitPatternBlocked(t *testing.T) {
	for _, tc := range []struct {
		name      string
		dir       policy.StreamDir
		action    policy.Action
		noHandler bool // a nil HitHandler: the hit still ends the flow
	}{
		{"to-server-drop", policy.ToServer, policy.ActionDrop, false},
		{"to-server-reject", policy.ToServer, policy.ActionReject, false},
		{"to-client-drop", policy.ToClient, policy.ActionDrop, false},
		{"to-server-drop-no-handler", policy.ToServer, policy.ActionDrop, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testenv.NoLeak(t)
			ins := &fakeInspector{pats: []fakePattern{{dir: tc.dir, text: "EVILPATTERN", action: tc.action, rule: 3}}}
			hits := &hitRecorder{}
			var onHit HitHandler = hits
			if tc.noHandler {
				onHit = nil
			}
			e := startTCP(t, ins, onHit)
			sender, receiver := e.app, e.srv
			if tc.dir == policy.ToClient {
				sender, receiver = e.srv, e.app
			}
			first, second := "hello EVIL", "PATTERN and more"
			if _, err := sender.Write([]byte(first)); err != nil {
				t.Fatal(err)
			}
			// The bytes before the pattern arrive; only then is the rest
			// sent, so the pattern really is split across two relay reads.
			buf := make([]byte, len(first))
			if _, err := io.ReadFull(receiver, buf); err != nil || string(buf) != first {
				t.Fatalf("receiver before the split: got %q, %v; want %q", buf, err, first)
			}
			time.Sleep(200 * time.Millisecond)
			if _, err := sender.Write([]byte(second)); err != nil {
				t.Fatal(err)
			}
			rest, err := io.ReadAll(receiver)
			if len(rest) != 0 {
				t.Errorf("receiver after the pattern was completed: got %q; want nothing", rest)
			}
			if !isReset(err) {
				t.Errorf("receiver: got %v; want a reset", err)
			}
			if _, err := io.ReadAll(sender); !isReset(err) {
				t.Errorf("sender: got %v; want a reset", err)
			}
			st := e.wait(t)
			if st.Hit == nil || st.Hit.Rule != 3 || st.Hit.Action != tc.action {
				t.Errorf("Stats.Hit: got %+v; want rule 3 action %v", st.Hit, tc.action)
			}
			if st.Err != nil {
				t.Errorf("Stats.Err: got %v; want nil, a hit is not an error", st.Err)
			}
			wantCalls := 1
			if tc.noHandler {
				wantCalls = 0
			}
			if got := hits.got(); len(got) != wantCalls || (wantCalls == 1 && got[0].Rule != 3) {
				t.Errorf("OnHit calls: got %+v; want %d for rule 3", got, wantCalls)
			}
		})
	}
}

func TestTCPAllowHitStopsInspection(t *testing.T) {
	testenv.NoLeak(t)
	ins := &fakeInspector{pats: []fakePattern{
		{dir: policy.ToServer, text: "TRUSTED", action: policy.ActionAllow, rule: 1},
		{dir: policy.ToServer, text: "EVIL", action: policy.ActionDrop, rule: 2},
		{dir: policy.ToClient, text: "EVIL", action: policy.ActionDrop, rule: 2},
	}}
	hits := &hitRecorder{}
	e := startTCP(t, ins, hits)
	for _, m := range []string{"hi TRUSTED peer", "now EVIL", " and more EVIL"} {
		if _, err := e.app.Write([]byte(m)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, len(m))
		if _, err := io.ReadFull(e.srv, buf); err != nil || string(buf) != m {
			t.Fatalf("server: got %q, %v; want %q", buf, err, m)
		}
	}
	if _, err := e.srv.Write([]byte("EVIL back")); err != nil {
		t.Fatal(err)
	}
	e.app.CloseWrite()
	e.srv.CloseWrite()
	if got, err := io.ReadAll(e.app); err != nil || string(got) != "EVIL back" {
		t.Errorf("client after the allow hit: got %q, %v; want %q + EOF", got, err, "EVIL back")
	}
	st := e.wait(t)
	if st.Hit != nil || st.Err != nil {
		t.Errorf("got hit=%v err=%v; want a clean end, an allow hit does not end the flow", st.Hit, st.Err)
	}
	if ins.after != 0 {
		t.Errorf("Feed calls after the allow hit: got %d; want 0", ins.after)
	}
	if got := hits.got(); len(got) != 0 {
		t.Errorf("OnHit calls: got %+v; want none for an allow hit", got)
	}
}

func TestTCPCancel(t *testing.T) {
	testenv.NoLeak(t)
	e := startTCP(t, nil, nil)
	if _, err := e.app.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(e.srv, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	e.cancel()
	if st := e.wait(t); !errors.Is(st.Err, context.Canceled) {
		t.Errorf("Err: got %v; want context.Canceled", st.Err)
	}
	if _, err := io.ReadAll(e.app); !isReset(err) {
		t.Errorf("client after cancel: got %v; want a reset", err)
	}
}

func TestTCPUpstreamResetAbortsClient(t *testing.T) {
	testenv.NoLeak(t)
	e := startTCP(t, nil, nil)
	if _, err := e.app.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(e.srv, make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
	e.srv.SetLinger(0)
	e.srv.Close()
	if _, err := io.ReadAll(e.app); !isReset(err) {
		t.Errorf("client after upstream reset: got %v; want a reset", err)
	}
	if st := e.wait(t); st.Err == nil {
		t.Error("Err: got nil; want the upstream reset")
	}
}

func TestTCPDoneInspectorNotFed(t *testing.T) {
	testenv.NoLeak(t)
	var ins *doneInspector // Feed panics: the relay must not call it
	e := startTCP(t, ins, nil)
	e.app.Write([]byte("abc"))
	e.app.CloseWrite()
	e.srv.CloseWrite()
	if got, _ := io.ReadAll(e.srv); string(got) != "abc" {
		t.Errorf("server: got %q; want %q", got, "abc")
	}
	io.ReadAll(e.app)
	e.wait(t)
}

func TestUpstreamAbortResets(t *testing.T) {
	local, peer := tcpPair(t)
	defer peer.Close()
	c := Upstream(local)
	c.Abort()
	if _, err := io.ReadAll(peer); !isReset(err) {
		t.Errorf("peer after Abort: got %v; want a reset", err)
	}
	if err := c.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Close after Abort: got %v; want net.ErrClosed", err)
	}
}

// TestTCPNoAllocs guards the copy loop with an inspector armed: relaying a
// chunk must not allocate. Allocations are counted process-wide, so the
// test's own reads and writes must not allocate either.
func TestTCPNoAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	if raceEnabled {
		t.Skip("the big buffers are reused through sync.Pool, which the race detector empties at random; the guard runs without -race")
	}
	ins := &fakeInspector{pats: []fakePattern{{dir: policy.ToServer, text: "NEVERSENT", action: policy.ActionDrop}}}
	ins.tail[0] = make([]byte, 0, 64<<10) // the fake itself must not allocate
	e := startTCP(t, ins, &hitRecorder{})
	chunk := make([]byte, 16<<10)
	got := make([]byte, len(chunk))
	step := func() {
		if _, err := e.app.Write(chunk); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(e.srv, got); err != nil {
			t.Fatal(err)
		}
	}
	step() // warm the buffer pool
	if a := testing.AllocsPerRun(200, step); a != 0 {
		t.Errorf("allocations per relayed chunk: got %v; want 0", a)
	}
}

func BenchmarkTCP(b *testing.B) {
	e := startTCP(b, nil, nil)
	chunk := make([]byte, 128<<10)
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	done := make(chan error, 1)
	go func() { // the server app; ends once it has read everything or fails
		buf := make([]byte, 256<<10)
		var n int64
		want := int64(b.N) * int64(len(chunk))
		for n < want {
			k, err := e.srv.Read(buf)
			n += int64(k)
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	b.ResetTimer()
	for range b.N {
		if _, err := e.app.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}
