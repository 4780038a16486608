package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime/debug"
	"sync"
	"time"
)

// HandlerFunc serves one operation. It returns the response's data (any
// value encoding/json can marshal, or a Stream) or an error whose text the
// client sees.
type HandlerFunc func(ctx context.Context, args json.RawMessage) (any, error)

// Mux maps operation names to handlers.
type Mux map[string]HandlerFunc

// Stream is data produced element by element: the server writes a JSON
// array, calling emit once per element, without holding the whole listing.
type Stream func(emit func(v any) error) error

// LiveStream is a Stream whose elements come as things happen (an event
// feed): each is flushed to the client at once, and emit(nil) sends a
// keepalive (a newline, which JSON allows between elements), which fails
// once the client has gone, so an idle feed learns of it too.
type LiveStream func(emit func(v any) error) error

// acceptBackoffMax bounds the pause after a failing Accept (EMFILE and the
// like), so a descriptor shortage does not spin.
const acceptBackoffMax = time.Second

// Serve answers connections until ctx is done or Close is called, with at
// most MaxConns at once. When ctx ends it closes the listener and every
// connection being served, waits for their goroutines and removes the
// socket file. It returns nil when ended that way.
func (s *Server) Serve(ctx context.Context, mux Mux) error {
	defer s.Close()
	// Unblocks Accept when ctx ends.
	stop := context.AfterFunc(ctx, func() { s.ln.Close() })
	defer stop()

	var wg sync.WaitGroup
	defer wg.Wait()
	sem := make(chan struct{}, s.opts.MaxConns)
	var backoff time.Duration
	for {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		c, err := s.ln.Accept()
		if err != nil {
			<-sem
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), acceptBackoffMax)
			s.opts.Log.Warn("control socket accept failed", "err", err.Error(), "retry_in", backoff.String())
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		backoff = 0
		wg.Add(1)
		// Ends when the exchange is done, by the connection's deadlines at
		// the latest, or at once when ctx ends (the conn is closed under it).
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s.serveConn(ctx, c, mux)
		}()
	}
}

// serveConn reads one request, runs its handler and writes the response.
func (s *Server) serveConn(ctx context.Context, c net.Conn, mux Mux) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()

	_ = c.SetReadDeadline(time.Now().Add(s.opts.ReadTimeout))
	w := bufio.NewWriterSize(&deadlineWriter{c: c, d: s.opts.WriteTimeout}, 32<<10)
	req, err := readRequest(c, s.opts.MaxRequest)
	if err != nil {
		writeResponse(w, MinVersion, nil, err)
		return
	}
	h, ok := mux[req.Op]
	if !ok {
		writeResponse(w, req.V, nil, fmt.Errorf("unknown operation %q", req.Op))
		return
	}
	data, err := s.call(ctx, h, req)
	if err := s.respond(w, req, data, err); err != nil && ctx.Err() == nil {
		s.opts.Log.Debug("control response not delivered", "op", req.Op, "err", err.Error())
	}
}

// respond writes the response, turning a panic in a stream into an
// interrupted response, as call does for handlers.
func (s *Server) respond(w *bufio.Writer, req *Request, data any, herr error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			s.opts.Log.Error("control stream panicked", "op", req.Op, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			err = errors.New("internal error")
		}
	}()
	return writeResponse(w, req.V, data, herr)
}

// call runs h, turning a panic into an error: a bug in a listing must not
// take the data plane down with it.
func (s *Server) call(ctx context.Context, h HandlerFunc, req *Request) (data any, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.opts.Log.Error("control handler panicked", "op", req.Op, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			data, err = nil, errors.New("internal error")
		}
	}()
	return h(ctx, req.Args)
}

// readRequest decodes one request of at most max bytes.
func readRequest(r io.Reader, max int) (*Request, error) {
	lr := &io.LimitedReader{R: r, N: int64(max) + 1}
	var req Request
	if err := json.NewDecoder(lr).Decode(&req); err != nil {
		if lr.N <= 0 {
			return nil, fmt.Errorf("request larger than %d bytes", max)
		}
		return nil, fmt.Errorf("bad request: %w", err)
	}
	if req.V < MinVersion || req.V > Version {
		return nil, fmt.Errorf("unsupported protocol version %d (this gateway speaks %d to %d)", req.V, MinVersion, Version)
	}
	return &req, nil
}

// writeResponse writes the response object in protocol version v; data
// comes last (a Stream is written element by element) and an error
// interrupting a stream follows it.
func writeResponse(w *bufio.Writer, v int, data any, herr error) error {
	if herr != nil {
		b, err := json.Marshal(Response{V: v, Error: herr.Error()})
		if err != nil {
			return err
		}
		w.Write(b)
		w.WriteByte('\n')
		return w.Flush()
	}
	fmt.Fprintf(w, `{"v":%d,"ok":true,"data":`, v)
	var serr error
	switch st := data.(type) {
	case Stream:
		serr = writeStream(w, st, false)
	case LiveStream:
		serr = writeStream(w, Stream(st), true)
	default:
		b, err := json.Marshal(data)
		if err != nil {
			serr = err
			b = []byte("null")
		}
		w.Write(b)
	}
	if serr != nil {
		msg, _ := json.Marshal(serr.Error())
		fmt.Fprintf(w, `,"error":%s`, msg)
	}
	w.WriteString("}\n")
	return w.Flush()
}

func writeStream(w *bufio.Writer, st Stream, live bool) error {
	w.WriteByte('[')
	if live {
		// The client learns the feed has started. A failure here shows
		// again on the stream's first write; the stream still runs, so
		// whatever it holds is released the same way.
		_ = w.Flush()
	}
	n := 0
	err := st(func(v any) error {
		if v == nil && live {
			w.WriteByte('\n')
			return w.Flush()
		}
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if n > 0 {
			w.WriteByte(',')
		}
		n++
		if _, err = w.Write(b); err == nil && live {
			err = w.Flush()
		}
		return err // a write error (client gone, deadline) ends the stream
	})
	w.WriteByte(']')
	return err
}

// deadlineWriter gives every write its own deadline, so a slow but moving
// client can read a long listing while a stuck one is cut off.
type deadlineWriter struct {
	c net.Conn
	d time.Duration
}

func (w *deadlineWriter) Write(p []byte) (int, error) {
	if err := w.c.SetWriteDeadline(time.Now().Add(w.d)); err != nil {
		return 0, err
	}
	return w.c.Write(p)
}
