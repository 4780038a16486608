package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tungate/tungate/bench"
)

// The agents run inside a namespace and print one JSON object on stdout.

func raiseNoFile() error {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return err
	}
	l.Cur = l.Max
	return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
}

func emit(v any) error {
	return json.NewEncoder(os.Stdout).Encode(v)
}

// untilStdinCloses cancels the returned context when stdin reaches EOF: the
// harness ends a long-running agent by closing its stdin, and an agent whose
// harness died ends with it.
func untilStdinCloses(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	// Owned by the agent; ends at EOF, which process exit also brings.
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	return ctx, cancel
}

func hostPort(ip string, port int) string {
	return net.JoinHostPort(ip, strconv.Itoa(port))
}

// agentServe runs the benchmark servers until stdin closes: request/response
// (one byte each way, then the server closes, so TIME_WAIT stays on the
// server and the client's ports are not exhausted), one-byte echo, and hold.
func agentServe(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	addr := fs.String("addr", "", "address to listen on")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := raiseNoFile(); err != nil {
		return err
	}
	ctx, cancel := untilStdinCloses(ctx)
	defer cancel()
	handlers := map[int]func(net.Conn){
		bench.PortReqResp: func(c net.Conn) {
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			var b [1]byte
			if _, err := io.ReadFull(c, b[:]); err == nil {
				_, _ = c.Write(b[:])
			}
		},
		bench.PortPingPong: func(c net.Conn) {
			var b [1]byte
			for {
				if _, err := io.ReadFull(c, b[:]); err != nil {
					return
				}
				if _, err := c.Write(b[:]); err != nil {
					return
				}
			}
		},
		bench.PortHold: func(c net.Conn) { _, _ = io.Copy(io.Discard, c) },
	}
	var lns []net.Listener
	var conns sync.WaitGroup
	for port, h := range handlers {
		lc := net.ListenConfig{}
		ln, err := lc.Listen(ctx, "tcp", hostPort(*addr, port))
		if err != nil {
			return err
		}
		lns = append(lns, ln)
		// Each accept loop is owned by serve and ends when its listener closes.
		conns.Go(func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				// Ends when the peer closes or the deadline passes; the
				// process exit takes the rest.
				go func() {
					defer c.Close()
					h(c)
				}()
			}
		})
	}
	fmt.Println("ready")
	<-ctx.Done()
	for _, ln := range lns {
		ln.Close()
	}
	conns.Wait()
	return nil
}

type connRateResult struct {
	OK         int64   `json:"ok"`
	Errors     int64   `json:"errors"`
	Stalled    int64   `json:"stalled"` // unfinished after more than 1 s when the run ended
	Seconds    float64 `json:"seconds"`
	PerSecond  float64 `json:"per_second"`
	FirstError string  `json:"first_error,omitempty"`
	// Mean time to connect, to get the response, and to see the server's
	// FIN after it, over the successful connections.
	DialUs, RespUs, FinUs float64
	// Connect time p99: a dropped SYN shows here as the kernel's 1 s
	// retransmission.
	DialP99Us float64
}

// phases sums the time spent in each step of reqResp, in nanoseconds.
type phases struct{ dial, resp, fin atomic.Int64 }

// dialSamples collects connect times from all workers.
type dialSamples struct {
	mu  sync.Mutex // guards all
	all []time.Duration
}

// agentConnRate opens connections with a one-byte request/response each,
// from several workers, for a bounded time.
func agentConnRate(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("connrate", flag.ContinueOnError)
	addr := fs.String("addr", "", "server address")
	d := fs.Duration("d", 5*time.Second, "duration")
	workers := fs.Int("workers", 32, "concurrent connections")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := raiseNoFile(); err != nil {
		return err
	}
	target := hostPort(*addr, bench.PortReqResp)
	end := time.Now().Add(*d)
	ctx, cancel := context.WithDeadline(ctx, end)
	defer cancel()
	var ok, fails, stalled atomic.Int64
	var firstErr atomic.Value
	var ph phases
	var ds dialSamples
	start := time.Now()
	var wg sync.WaitGroup
	for range *workers {
		wg.Go(func() {
			var b [1]byte
			var mine []time.Duration
			defer func() {
				ds.mu.Lock()
				ds.all = append(ds.all, mine...)
				ds.mu.Unlock()
			}()
			for ctx.Err() == nil {
				t0 := time.Now()
				dial, err := reqResp(ctx, target, b[:], &ph)
				if err != nil {
					// Connections cut short by the end of the run are not
					// failures; the dial's own timer may beat ctx's. One
					// that had already waited a second is stalled, though.
					if ctx.Err() != nil || !time.Now().Before(end) {
						if time.Since(t0) > time.Second {
							stalled.Add(1)
						}
						return
					}
					fails.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					time.Sleep(10 * time.Millisecond) // a refusing gateway must not become a busy loop
					continue
				}
				ok.Add(1)
				mine = append(mine, dial)
			}
		})
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	r := connRateResult{OK: ok.Load(), Errors: fails.Load(), Stalled: stalled.Load(), Seconds: secs, PerSecond: float64(ok.Load()) / secs}
	if s, isStr := firstErr.Load().(string); isStr {
		r.FirstError = s
	}
	if n := float64(r.OK) * 1e3; n > 0 {
		r.DialUs, r.RespUs, r.FinUs = float64(ph.dial.Load())/n, float64(ph.resp.Load())/n, float64(ph.fin.Load())/n
		r.DialP99Us = float64(bench.Percentile(ds.all, 99)) / 1e3
	}
	return emit(r)
}

func reqResp(ctx context.Context, target string, b []byte, ph *phases) (dial time.Duration, err error) {
	// Five seconds: a dropped SYN costs the 1 s or 3 s of the kernel's
	// retransmissions and still completes, so drops show in the rate and
	// the mean connect time rather than as failures.
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var d net.Dialer
	t0 := time.Now()
	c, err := d.DialContext(dctx, "tcp", target)
	if err != nil {
		return 0, err
	}
	t1 := time.Now()
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	b[0] = 'x'
	if _, err := c.Write(b); err != nil {
		return 0, err
	}
	if _, err := io.ReadFull(c, b); err != nil {
		return 0, err
	}
	t2 := time.Now()
	// Wait for the server's FIN so that this side closes passively.
	if _, err := c.Read(b); !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("expected EOF after the response, got %v", err)
	}
	t3 := time.Now()
	ph.dial.Add(int64(t1.Sub(t0)))
	ph.resp.Add(int64(t2.Sub(t1)))
	ph.fin.Add(int64(t3.Sub(t2)))
	return t1.Sub(t0), nil
}

type pingPongResult struct {
	N      int     `json:"n"`
	P50us  float64 `json:"p50_us"`
	P99us  float64 `json:"p99_us"`
	MeanUs float64 `json:"mean_us"`
}

// agentPingPong measures one-byte round trips on one connection.
func agentPingPong(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("pingpong", flag.ContinueOnError)
	addr := fs.String("addr", "", "server address")
	d := fs.Duration("d", 5*time.Second, "duration")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var dl net.Dialer
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	c, err := dl.DialContext(dctx, "tcp", hostPort(*addr, bench.PortPingPong))
	cancel()
	if err != nil {
		return err
	}
	defer c.Close()
	var b [1]byte
	rtt := func() (time.Duration, error) {
		t0 := time.Now()
		if _, err := c.Write(b[:]); err != nil {
			return 0, err
		}
		if _, err := io.ReadFull(c, b[:]); err != nil {
			return 0, err
		}
		return time.Since(t0), nil
	}
	_ = c.SetDeadline(time.Now().Add(*d + 5*time.Second))
	for range 200 { // warm-up: caches, flow setup, delayed-ACK state
		if _, err := rtt(); err != nil {
			return err
		}
	}
	samples := make([]time.Duration, 0, 1<<16)
	var sum time.Duration
	end := time.Now().Add(*d)
	for time.Now().Before(end) && ctx.Err() == nil {
		x, err := rtt()
		if err != nil {
			return err
		}
		samples = append(samples, x)
		sum += x
	}
	if len(samples) == 0 {
		return errors.New("no samples")
	}
	us := func(x time.Duration) float64 { return float64(x) / float64(time.Microsecond) }
	return emit(pingPongResult{
		N:      len(samples),
		P50us:  us(bench.Percentile(samples, 50)),
		P99us:  us(bench.Percentile(samples, 99)),
		MeanUs: us(sum / time.Duration(len(samples))),
	})
}

type idleResult struct {
	Held       int     `json:"held"`
	Failed     int     `json:"failed"`
	Seconds    float64 `json:"seconds"`
	FirstError string  `json:"first_error,omitempty"`
}

// agentIdle opens n connections to the hold server, reports how many it
// holds, and keeps them until stdin closes.
func agentIdle(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("idle", flag.ContinueOnError)
	addr := fs.String("addr", "", "server address")
	n := fs.Int("n", 10000, "connections")
	parallel := fs.Int("parallel", 128, "concurrent dials")
	timeout := fs.Duration("timeout", 30*time.Second, "bound on opening them all")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := raiseNoFile(); err != nil {
		return err
	}
	ctx, cancel := untilStdinCloses(ctx)
	defer cancel()
	octx, ocancel := context.WithTimeout(ctx, *timeout)
	defer ocancel()
	target := hostPort(*addr, bench.PortHold)
	conns := make([]net.Conn, *n)
	var failed atomic.Int64
	var firstErr atomic.Value
	var next atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range *parallel {
		wg.Go(func() {
			var d net.Dialer
			for {
				i := int(next.Add(1)) - 1
				if i >= *n || octx.Err() != nil {
					return
				}
				c, err := d.DialContext(octx, "tcp", target)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				conns[i] = c
			}
		})
	}
	wg.Wait()
	r := idleResult{Failed: int(failed.Load()), Seconds: time.Since(start).Seconds()}
	for _, c := range conns {
		if c != nil {
			r.Held++
		}
	}
	if s, ok := firstErr.Load().(string); ok {
		r.FirstError = s
	}
	if err := emit(r); err != nil {
		return err
	}
	<-ctx.Done()
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
	return nil
}

// agentProbe waits until a one-byte echo through the gateway works.
func agentProbe(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	addr := fs.String("addr", "", "server address")
	timeout := fs.Duration("timeout", 15*time.Second, "give up after")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	var last error
	for ctx.Err() == nil {
		if last = echoOnce(ctx, hostPort(*addr, bench.PortPingPong)); last == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("no echo through the gateway within %v: %v", *timeout, last)
}

func echoOnce(ctx context.Context, target string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte{1}); err != nil {
		return err
	}
	_, err = bufio.NewReader(c).ReadByte()
	return err
}
