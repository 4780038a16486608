package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// waitMax bounds waits for goroutines that must end, so a bug fails the
// test with a message instead of hanging until go test's timeout. It is not
// a speed assertion.
const waitMax = 30 * time.Second

// serve starts a server on a fresh socket and returns it with its path.
// done receives Serve's result; the cleanup cancels ctx and waits for
// Serve to return.
func serve(t *testing.T, mux Mux, opts Options) (*Server, string, context.CancelFunc, <-chan error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ctl.sock")
	s, err := Listen(path, opts)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ended := make(chan struct{})
	go func() {
		done <- s.Serve(ctx, mux)
		close(ended)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-ended:
		case <-time.After(waitMax):
			t.Error("Serve did not return after cancel")
		}
	})
	return s, path, cancel, done
}

var echoMux = Mux{
	"echo": func(_ context.Context, args json.RawMessage) (any, error) {
		var v map[string]any
		if err := json.Unmarshal(args, &v); err != nil {
			return nil, err
		}
		return v, nil
	},
	"fail": func(context.Context, json.RawMessage) (any, error) {
		return nil, errors.New("a.toml:3:7: bad thing\na.toml:9:1: another")
	},
	"panic": func(context.Context, json.RawMessage) (any, error) { panic("boom") },
}

func TestRoundTrip(t *testing.T) {
	_, path, _, _ := serve(t, echoMux, Options{})
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want a socket with 0600", fi.Mode())
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("socket directory holds %d entries, want only the socket (temporary bind dir left?)", len(entries))
	}

	c := Client{Path: path}
	var got map[string]any
	if err := c.Call(context.Background(), "echo", map[string]any{"x": "y", "n": 3}, &got); err != nil {
		t.Fatalf("Call: %v", err)
	}
	if got["x"] != "y" || got["n"] != float64(3) {
		t.Errorf("echo = %v", got)
	}

	err = c.Call(context.Background(), "fail", nil, nil)
	var re *RemoteError
	if !errors.As(err, &re) || re.Msg != "a.toml:3:7: bad thing\na.toml:9:1: another" {
		t.Errorf("fail: %v, want the handler's message verbatim as RemoteError", err)
	}
	if err := c.Call(context.Background(), "nope", nil, nil); !errors.As(err, &re) || !strings.Contains(re.Msg, `unknown operation "nope"`) {
		t.Errorf("unknown op: %v", err)
	}
	if err := c.Call(context.Background(), "panic", nil, nil); !errors.As(err, &re) || re.Msg != "internal error" {
		t.Errorf("panicking handler: %v", err)
	}
	// The server survived the panic.
	if err := c.Call(context.Background(), "echo", map[string]int{}, nil); err != nil {
		t.Errorf("after panic: %v", err)
	}
}

// rawCall sends raw bytes, then ends its side of the connection unless
// keepOpen, and returns the decoded response.
func rawCall(t *testing.T, path string, req []byte, keepOpen ...bool) Response {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitMax))
	// The server may answer and close before reading all of an oversize
	// request; a write error then is expected.
	go func() {
		c.Write(req)
		if len(keepOpen) == 0 {
			c.(*net.UnixConn).CloseWrite()
		}
	}()
	var resp Response
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		t.Fatalf("decode response: %v", err)
	}
	return resp
}

func TestRequestChecks(t *testing.T) {
	_, path, _, _ := serve(t, echoMux, Options{MaxRequest: 1024})

	big := fmt.Appendf(nil, `{"v":1,"op":"echo","args":{"x":%q}}`, strings.Repeat("a", 2000))
	if r := rawCall(t, path, big); r.OK || !strings.Contains(r.Error, "larger than 1024 bytes") || r.V != MinVersion {
		t.Errorf("oversize request: %+v", r)
	}
	ok := fmt.Appendf(nil, `{"v":1,"op":"echo","args":{"x":%q}}`, strings.Repeat("a", 900))
	if r := rawCall(t, path, ok); !r.OK {
		t.Errorf("request under the limit refused: %+v", r)
	}
	if r := rawCall(t, path, []byte(`{"v":3,"op":"echo"}`)); r.OK || !strings.Contains(r.Error, "unsupported protocol version 3") {
		t.Errorf("v3 request: %+v", r)
	}
	if r := rawCall(t, path, []byte(`{"op":"echo"}`)); r.OK || !strings.Contains(r.Error, "version 0") {
		t.Errorf("request without v: %+v", r)
	}
	if r := rawCall(t, path, []byte("{\"v\":1,\"op\":\n")); r.OK || !strings.Contains(r.Error, "bad request") {
		t.Errorf("truncated request: %+v", r)
	}
}

func TestReadTimeout(t *testing.T) {
	_, path, _, _ := serve(t, echoMux, Options{ReadTimeout: 50 * time.Millisecond})
	// Send nothing: the server must give up and answer, not wait forever.
	if r := rawCall(t, path, nil, true); r.OK || !strings.Contains(r.Error, "i/o timeout") {
		t.Errorf("silent client: %+v", r)
	}
}

func TestStaleSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ctl.sock")

	// A socket left behind by a process that died: bound, never unlinked.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	s, err := Listen(path, Options{})
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, echoMux) }()
	if err := (Client{Path: path}).Call(context.Background(), "echo", map[string]int{}, nil); err != nil {
		t.Errorf("Call after replacing the stale socket: %v", err)
	}

	// A second gateway on the same path is refused, and the first keeps
	// its socket.
	if _, err := Listen(path, Options{}); !errors.Is(err, ErrInUse) {
		t.Errorf("Listen over a live socket: %v, want ErrInUse", err)
	}
	if err := (Client{Path: path}).Call(context.Background(), "echo", map[string]int{}, nil); err != nil {
		t.Errorf("the first server lost its socket: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket file after Serve ended: %v, want it removed", err)
	}

	// Anything that is not a socket is never replaced.
	if err := os.WriteFile(path, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(path, Options{}); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Listen over a regular file: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "keep me" {
		t.Errorf("regular file changed to %q", b)
	}
}

func TestCloseKeepsForeignFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ctl.sock")
	s, err := Listen(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Someone replaced the socket (say, a newer gateway after a manual
	// removal): ours must not delete theirs on the way out.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := os.Lstat(path); err != nil {
		t.Errorf("Close removed a file it did not create: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestCancelEndsServer(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	entered := make(chan struct{}, 1)
	mux := Mux{"block": func(ctx context.Context, _ json.RawMessage) (any, error) {
		entered <- struct{}{}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-release:
			return nil, nil
		}
	}}
	_, path, cancel, done := serve(t, mux, Options{ReadTimeout: time.Hour, WriteTimeout: time.Hour})

	// One connection idle in the request read, one inside a handler.
	idle, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	callErr := make(chan error, 1)
	go func() { callErr <- (Client{Path: path}).Call(context.Background(), "block", nil, nil) }()
	<-entered

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(waitMax):
		t.Fatal("Serve did not return after cancel")
	}
	if err := <-callErr; err == nil {
		t.Error("the call in flight succeeded after the server was cancelled")
	}
	idle.SetReadDeadline(time.Now().Add(waitMax))
	if _, err := io.ReadAll(idle); err != nil {
		t.Errorf("idle connection: %v, want closed by the server", err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket file after cancel: %v, want removed", err)
	}
}

func TestBoundedConns(t *testing.T) {
	const limit, clients = 2, 8
	var cur, peak atomic.Int32
	gate := make(chan struct{})
	mux := Mux{"work": func(context.Context, json.RawMessage) (any, error) {
		n := cur.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-gate
		cur.Add(-1)
		return nil, nil
	}}
	_, path, _, _ := serve(t, mux, Options{MaxConns: limit})
	// Every client connects and sends its request up front (the kernel
	// queues them), so an unbounded server would run them all at once.
	conns := make([]net.Conn, clients)
	for i := range conns {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(waitMax))
		if _, err := c.Write([]byte(`{"v":1,"op":"work"}` + "\n")); err != nil {
			t.Fatal(err)
		}
		conns[i] = c
	}
	deadline := time.Now().Add(waitMax)
	for cur.Load() < limit && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	// Give a broken bound the chance to let more in; this can only hide a
	// bug, never fail a correct server.
	time.Sleep(50 * time.Millisecond)
	if n := cur.Load(); n != limit {
		t.Errorf("%d handlers running with %d clients waiting, want %d", n, clients, limit)
	}
	for range clients {
		gate <- struct{}{}
	}
	for i, c := range conns {
		var r Response
		if err := json.NewDecoder(c).Decode(&r); err != nil || !r.OK {
			t.Errorf("client %d: %v %+v", i, err, r)
		}
	}
	if p := peak.Load(); p != limit {
		t.Errorf("peak concurrent handlers %d, want %d", p, limit)
	}
}

func TestStream(t *testing.T) {
	const n = 5000
	mux := Mux{
		"list": func(context.Context, json.RawMessage) (any, error) {
			return Stream(func(emit func(any) error) error {
				for i := range n {
					if err := emit(map[string]int{"i": i}); err != nil {
						return err
					}
				}
				return nil
			}), nil
		},
		"broken": func(context.Context, json.RawMessage) (any, error) {
			return Stream(func(emit func(any) error) error {
				emit(1)
				return errors.New("table went away")
			}), nil
		},
		"empty": func(context.Context, json.RawMessage) (any, error) {
			return Stream(func(func(any) error) error { return nil }), nil
		},
	}
	_, path, _, _ := serve(t, mux, Options{})
	c := Client{Path: path}
	next := 0
	err := c.Stream(context.Background(), "list", nil, func(dec *json.Decoder) error {
		var v struct{ I int }
		if err := dec.Decode(&v); err != nil {
			return err
		}
		if v.I != next {
			return fmt.Errorf("element %d, want %d", v.I, next)
		}
		next++
		return nil
	})
	if err != nil || next != n {
		t.Fatalf("Stream: %v after %d elements, want %d", err, next, n)
	}
	// The same data through Call, decoded whole.
	var all []struct{ I int }
	if err := c.Call(context.Background(), "list", nil, &all); err != nil || len(all) != n || all[n-1].I != n-1 {
		t.Errorf("Call on a stream: %v, %d elements", err, len(all))
	}

	var re *RemoteError
	err = c.Stream(context.Background(), "broken", nil, func(dec *json.Decoder) error {
		var v any
		return dec.Decode(&v)
	})
	if !errors.As(err, &re) || re.Msg != "table went away" {
		t.Errorf("interrupted stream: %v", err)
	}
	if err := c.Call(context.Background(), "broken", nil, nil); !errors.As(err, &re) {
		t.Errorf("interrupted stream through Call: %v", err)
	}
	calls := 0
	if err := c.Stream(context.Background(), "empty", nil, func(*json.Decoder) error { calls++; return nil }); err != nil || calls != 0 {
		t.Errorf("empty stream: %v, %d calls", err, calls)
	}
	if err := c.Stream(context.Background(), "nope", nil, func(*json.Decoder) error { return nil }); !errors.As(err, &re) {
		t.Errorf("unknown op through Stream: %v", err)
	}
}

func TestClientUnreachable(t *testing.T) {
	err := (Client{Path: filepath.Join(t.TempDir(), "none.sock")}).Call(context.Background(), OpPing, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "cannot reach") {
		t.Errorf("Call without a server: %v", err)
	}
	var re *RemoteError
	if errors.As(err, &re) {
		t.Error("an unreachable gateway reported as its refusal")
	}
}
