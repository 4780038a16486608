package test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tungate/tungate/internal/lab"
)

const (
	churnConns   = 5000
	churnWorkers = 32
	churnPort    = 7011
)

// TestConnectionChurn opens 5,000 short connections through the gateway from
// 32 workers, each like the benchmark's: connect, one byte each way, the
// server closes first. Linux clients come back to a source port after about
// 3,200 connections to one destination, so this covers a 4-tuple reopened
// while the gateway's side of its last incarnation had just closed actively
// (gVisor's TIME_WAIT used to swallow that SYN and every worker hung). It
// asserts how many connections completed, not how fast. It runs at the
// default limits: the closed flows lingering in conntrack's TIME_WAIT
// (more than max_flows_per_source's 4,096) must not count against the
// one client that closed them.
func TestConnectionChurn(t *testing.T) {
	l := newLab(t)
	startGateway(t, l, gatewayConfig(t, allowTCPRule("churn", churnPort)))

	dst := netip.AddrPortFrom(lab.ServerV4, churnPort)
	serve(t, l.Server, dst, func(c net.Conn) {
		var b [1]byte
		if _, err := io.ReadFull(c, b[:]); err == nil {
			_, _ = c.Write(b[:])
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var next, done atomic.Int64
	var mu sync.Mutex // guards errs
	var errs []error
	var wg sync.WaitGroup
	for range churnWorkers {
		// Each ends when the connections run out, on ctx, or after the
		// run has collected enough failures to tell.
		wg.Go(func() {
			for next.Add(1) <= churnConns && ctx.Err() == nil {
				if err := churnOnce(ctx, l.Client, dst); err != nil {
					mu.Lock()
					errs = append(errs, err)
					n := len(errs)
					mu.Unlock()
					if n >= churnWorkers {
						cancel()
					}
					continue
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	if got := done.Load(); got != churnConns {
		for i, err := range errs {
			if i == 5 {
				break
			}
			t.Errorf("failure %d: %v", i+1, err)
		}
		t.Fatalf("%d of %d connections completed (%d failed)", got, churnConns, len(errs))
	}
}

// churnOnce is one connection; its own bound only ends a hung attempt, so
// a dropped SYN (1 s retransmission) still completes.
func churnOnce(ctx context.Context, ns lab.NS, dst netip.AddrPort) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := ns.Dial(ctx, "tcp", dst.String())
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer c.Close()
	deadline, _ := ctx.Deadline()
	_ = c.SetDeadline(deadline)
	b := []byte{'x'}
	if _, err := c.Write(b); err != nil {
		return fmt.Errorf("%v: write: %w", c.LocalAddr(), err)
	}
	if _, err := io.ReadFull(c, b); err != nil {
		return fmt.Errorf("%v: read response: %w", c.LocalAddr(), err)
	}
	if _, err := c.Read(b); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%v: want EOF after the response, got %v", c.LocalAddr(), err)
	}
	return nil
}
