package test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/tungate/tungate/internal/lab"
)

const (
	concurrentConns = 200
	concurrentPort  = 7007
	requestSize     = 256
)

// TestConcurrentConnections opens 200 connections through the gateway at
// once; each sends its own request and must get back the SHA-256 of exactly
// that request, which the server computes (so crossed or truncated streams
// show up as wrong answers, not just as errors).
func TestConcurrentConnections(t *testing.T) {
	l := newLab(t)
	startGateway(t, l, gatewayConfig(t, allowTCPRule("concurrent", concurrentPort)))

	dst := netip.AddrPortFrom(lab.ServerV4, concurrentPort)
	serve(t, l.Server, dst, func(c net.Conn) {
		if err := peerIs(c, lab.GatewayWANV4); err != nil {
			t.Error(err)
			return
		}
		req := make([]byte, requestSize)
		if _, err := io.ReadFull(c, req); err != nil {
			return
		}
		sum := sha256.Sum256(req)
		c.Write(sum[:])
	})

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	deadline, _ := ctx.Deadline()

	errs := make([]error, concurrentConns)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range concurrentConns {
		wg.Add(1)
		// Each ends by the shared deadline at the latest.
		go func() {
			defer wg.Done()
			<-start
			errs[i] = requestResponse(ctx, l.Client, dst, deadline)
		}()
	}
	began := time.Now()
	close(start)
	wg.Wait()
	t.Logf("%d connections done in %v", concurrentConns, time.Since(began).Round(time.Millisecond))

	failed := 0
	for i, err := range errs {
		if err != nil {
			failed++
			if failed <= 10 {
				t.Errorf("connection %d: %v", i, err)
			}
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d connections failed", failed, concurrentConns)
	}
}

func requestResponse(ctx context.Context, ns lab.NS, dst netip.AddrPort, deadline time.Time) error {
	c, err := ns.Dial(ctx, "tcp", dst.String())
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer c.Close()
	c.SetDeadline(deadline)
	req := make([]byte, requestSize)
	rand.Read(req)
	if _, err := c.Write(req); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	got := make([]byte, sha256.Size)
	if _, err := io.ReadFull(c, got); err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if want := sha256.Sum256(req); string(got) != string(want[:]) {
		return fmt.Errorf("answer %x, want %x", got, want)
	}
	return nil
}
