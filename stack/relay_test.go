package stack

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tungate/tungate/policy"
)

// fakeInspector is a streaming matcher over a few literal patterns. It keeps
// the last len(pattern)-1 bytes per direction so a pattern split across
// Feed calls is still found. Like *policy.Inspector, every hit is terminal.
type fakeInspector struct {
	pats  []fakePattern
	tail  [2][]byte
	done  bool
	feeds [2]int // calls after done, to prove the relay stopped feeding
	after int
}

type fakePattern struct {
	dir    policy.StreamDir
	text   string
	action policy.Action
	rule   int
}

func (f *fakeInspector) Feed(dir policy.StreamDir, data []byte) (policy.Hit, bool) {
	f.feeds[dir]++
	if f.done {
		f.after++
		return policy.Hit{}, false
	}
	win := append(f.tail[dir], data...)
	for _, p := range f.pats {
		if p.dir == dir && bytes.Contains(win, []byte(p.text)) {
			f.done = true
			h := policy.Hit{Rule: p.rule, Action: p.action, Pattern: p.text}
			if p.action == policy.ActionReject {
				h.Reject = policy.RejectTCPReset
			}
			return h, true
		}
	}
	keep := 0
	for _, p := range f.pats {
		keep = max(keep, len(p.text)-1)
	}
	if len(win) > keep {
		win = win[len(win)-keep:]
	}
	f.tail[dir] = append(f.tail[dir][:0], win...)
	return policy.Hit{}, false
}

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t testing.TB) (dialed, accepted *net.TCPConn) {
	t.Helper()
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		c   *net.TCPConn
		err error
	}
	ch := make(chan res, 1)
	go func() { c, err := ln.AcceptTCP(); ch <- res{c, err} }()
	d, err := net.DialTCP("tcp4", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	return d, r.c
}

// relayEnv is client app <-> [relay client side | relay | upstream side] <-> server app.
type relayEnv struct {
	app, srv *net.TCPConn // the two applications' sockets
	hits     []policy.Hit
	hitMu    sync.Mutex // guards hits
	result   chan RelayStats
	cancel   context.CancelFunc
}

func startRelay(t testing.TB, ins streamInspector) *relayEnv {
	t.Helper()
	app, cside := tcpPair(t)
	uside, srv := tcpPair(t)
	ctx, cancel := context.WithCancel(context.Background())
	e := &relayEnv{app: app, srv: srv, result: make(chan RelayStats, 1), cancel: cancel}
	t.Cleanup(func() {
		cancel()
		app.Close()
		srv.Close()
	})
	go func() {
		e.result <- relayTCP(ctx, upstreamStream(cside), upstreamStream(uside), ins, func(h policy.Hit) {
			e.hitMu.Lock()
			e.hits = append(e.hits, h)
			e.hitMu.Unlock()
		})
	}()
	return e
}

func (e *relayEnv) wait(t testing.TB) RelayStats {
	t.Helper()
	select {
	case st := <-e.result:
		return st
	case <-time.After(30 * time.Second): // liveness guard, not a timing assertion
		t.Fatal("relay did not return")
		return RelayStats{}
	}
}

// noLeak fails the test if goroutines started during it outlive it.
func noLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Errorf("goroutines: %d before, %d after\n%s", before, n, buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func TestRelayTCPIntegrity(t *testing.T) {
	noLeak(t)
	e := startRelay(t, nil)
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
		t.Fatalf("read errors: %v, %v", errUp, errDown)
	}
	if sha256.Sum256(gotUp) != sha256.Sum256(up) {
		t.Errorf("client->server: got %d bytes, sha256 differs from %d sent", len(gotUp), len(up))
	}
	if sha256.Sum256(gotDown) != sha256.Sum256(down) {
		t.Errorf("server->client: got %d bytes, sha256 differs from %d sent", len(gotDown), len(down))
	}
	st := e.wait(t)
	if st.Err != nil || st.Hit != nil {
		t.Errorf("clean end expected, got err=%v hit=%v", st.Err, st.Hit)
	}
	if st.BytesToServer != int64(len(up)) || st.BytesToClient != int64(len(down)) {
		t.Errorf("stats %d/%d, want %d/%d", st.BytesToServer, st.BytesToClient, len(up), len(down))
	}
}

func TestRelayTCPHalfClose(t *testing.T) {
	for _, clientFirst := range []bool{true, false} {
		name := "server-closes-first"
		if clientFirst {
			name = "client-closes-first"
		}
		t.Run(name, func(t *testing.T) {
			noLeak(t)
			e := startRelay(t, nil)
			closer, other := e.srv, e.app
			if clientFirst {
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
				t.Fatalf("peer of the closing side read %q, %v; want request + EOF", got, err)
			}
			// The other direction must still flow after the half-close.
			reply := bytes.Repeat([]byte("late reply "), 10000)
			if _, err := other.Write(reply); err != nil {
				t.Fatalf("write after half-close: %v", err)
			}
			if err := other.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			got, err = io.ReadAll(closer)
			if err != nil || !bytes.Equal(got, reply) {
				t.Fatalf("half-closed side read %d bytes, %v; want %d + EOF", len(got), err, len(reply))
			}
			if st := e.wait(t); st.Err != nil || st.Hit != nil {
				t.Errorf("clean end expected, got err=%v hit=%v", st.Err, st.Hit)
			}
		})
	}
}

func TestRelayTCPSplitPatternBlocked(t *testing.T) {
	cases := []struct {
		name   string
		dir    policy.StreamDir
		action policy.Action
	}{
		{"to-server-drop", policy.ToServer, policy.ActionDrop},
		{"to-server-reject", policy.ToServer, policy.ActionReject},
		{"to-client-drop", policy.ToClient, policy.ActionDrop},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			noLeak(t)
			ins := &fakeInspector{pats: []fakePattern{{dir: tc.dir, text: "EVILPATTERN", action: tc.action, rule: 3}}}
			e := startRelay(t, ins)
			sender, receiver := e.app, e.srv
			if tc.dir == policy.ToClient {
				sender, receiver = e.srv, e.app
			}
			first, second := "hello EVIL", "PATTERN and more"
			if _, err := sender.Write([]byte(first)); err != nil {
				t.Fatal(err)
			}
			// The bytes before the pattern arrive; only then send the rest,
			// so the pattern really is split across two relay reads.
			buf := make([]byte, len(first))
			if _, err := io.ReadFull(receiver, buf); err != nil || string(buf) != first {
				t.Fatalf("receiver got %q, %v before the split; want %q", buf, err, first)
			}
			time.Sleep(200 * time.Millisecond)
			if _, err := sender.Write([]byte(second)); err != nil {
				t.Fatal(err)
			}
			rest, err := io.ReadAll(receiver)
			if len(rest) != 0 {
				t.Errorf("receiver got %q after the pattern was completed", rest)
			}
			if !isReset(err) {
				t.Errorf("receiver: want a reset, got %v", err)
			}
			_, err = io.ReadAll(sender)
			if !isReset(err) {
				t.Errorf("sender: want a reset, got %v", err)
			}
			st := e.wait(t)
			if st.Hit == nil || st.Hit.Rule != 3 || st.Hit.Action != tc.action {
				t.Errorf("stats hit = %+v, want rule 3 action %v", st.Hit, tc.action)
			}
			if st.Err != nil {
				t.Errorf("a hit is not an error; got %v", st.Err)
			}
			e.hitMu.Lock()
			defer e.hitMu.Unlock()
			if len(e.hits) != 1 || e.hits[0].Rule != 3 {
				t.Errorf("onHit calls: %+v, want exactly one for rule 3", e.hits)
			}
		})
	}
}

func TestRelayTCPAllowHitStopsInspection(t *testing.T) {
	noLeak(t)
	ins := &fakeInspector{pats: []fakePattern{
		{dir: policy.ToServer, text: "TRUSTED", action: policy.ActionAllow, rule: 1},
		{dir: policy.ToServer, text: "EVIL", action: policy.ActionDrop, rule: 2},
		{dir: policy.ToClient, text: "EVIL", action: policy.ActionDrop, rule: 2},
	}}
	e := startRelay(t, ins)
	msgs := []string{"hi TRUSTED peer", "now EVIL", " and more EVIL"}
	var sent bytes.Buffer
	for _, m := range msgs {
		if _, err := e.app.Write([]byte(m)); err != nil {
			t.Fatal(err)
		}
		sent.WriteString(m)
		buf := make([]byte, len(m))
		if _, err := io.ReadFull(e.srv, buf); err != nil || string(buf) != m {
			t.Fatalf("server got %q, %v; want %q", buf, err, m)
		}
	}
	if _, err := e.srv.Write([]byte("EVIL back")); err != nil {
		t.Fatal(err)
	}
	e.app.CloseWrite()
	e.srv.CloseWrite()
	got, err := io.ReadAll(e.app)
	if err != nil || string(got) != "EVIL back" {
		t.Errorf("client got %q, %v after allow hit", got, err)
	}
	st := e.wait(t)
	if st.Hit != nil || st.Err != nil {
		t.Errorf("allow hit must not end the flow: hit=%v err=%v", st.Hit, st.Err)
	}
	if ins.after != 0 {
		t.Errorf("inspector fed %d times after its allow hit", ins.after)
	}
	if len(e.hits) != 0 {
		t.Errorf("onHit called for an allow hit: %+v", e.hits)
	}
}

func TestRelayTCPCancel(t *testing.T) {
	noLeak(t)
	e := startRelay(t, nil)
	if _, err := e.app.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(e.srv, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	e.cancel()
	st := e.wait(t)
	if !errors.Is(st.Err, context.Canceled) {
		t.Errorf("Err = %v, want context.Canceled", st.Err)
	}
	if _, err := io.ReadAll(e.app); !isReset(err) {
		t.Errorf("client: want reset after cancel, got %v", err)
	}
}

func TestRelayTCPUpstreamResetAbortsClient(t *testing.T) {
	noLeak(t)
	e := startRelay(t, nil)
	if _, err := e.app.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(e.srv, make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
	e.srv.SetLinger(0)
	e.srv.Close()
	if _, err := io.ReadAll(e.app); !isReset(err) {
		t.Errorf("client: want reset after upstream reset, got %v", err)
	}
	if st := e.wait(t); st.Err == nil {
		t.Error("upstream reset should be reported in Err")
	}
}

// nilInspector mimics a nil *policy.Inspector passed through the interface.
type nilInspector struct{}

func (*nilInspector) Feed(policy.StreamDir, []byte) (policy.Hit, bool) { panic("fed a done inspector") }
func (*nilInspector) Done() bool                                       { return true }

func TestRelayTCPDoneInspectorNotFed(t *testing.T) {
	noLeak(t)
	var ni *nilInspector
	e := startRelay(t, ni)
	e.app.Write([]byte("abc"))
	e.app.CloseWrite()
	e.srv.CloseWrite()
	if got, _ := io.ReadAll(e.srv); string(got) != "abc" {
		t.Errorf("server got %q", got)
	}
	io.ReadAll(e.app)
	e.wait(t)
}

// TestRelayTCPNoAllocs guards the copy loop, inspector armed: relaying a
// chunk must not allocate. Allocations are counted process-wide, so the
// test's own reads and writes must not allocate either.
func TestRelayTCPNoAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	ins := &fakeInspector{pats: []fakePattern{{dir: policy.ToServer, text: "NEVERSENT", action: policy.ActionDrop}}}
	ins.tail[0] = make([]byte, 0, 64<<10) // the fake itself must not allocate
	e := startRelay(t, ins)
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
		t.Errorf("%v allocations per relayed chunk, want 0", a)
	}
}

func BenchmarkRelayTCP(b *testing.B) {
	e := startRelay(b, nil)
	chunk := make([]byte, 128<<10)
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	done := make(chan error, 1)
	go func() {
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
