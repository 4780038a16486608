package test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/tungate/tungate/internal/lab"
)

// serve listens on addr inside ns and runs handle for every accepted
// connection on its own goroutine. The listener closes and every handler is
// waited for when the test ends; handlers must respect the deadlines they
// set (each connection gets connDeadline up front).
func serve(t *testing.T, ns lab.NS, addr netip.AddrPort, handle func(net.Conn)) {
	t.Helper()
	ln, err := ns.Listen("tcp", addr.String())
	if err != nil {
		t.Fatalf("listen %s in %s: %v", addr, ns.Name, err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	// The accept loop ends when the cleanup closes ln.
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(connDeadline))
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
}

// connDeadline bounds every server-side connection, so a stuck flow ends
// the handler instead of the test binary's timeout.
const connDeadline = 2 * time.Minute

// dialTimeout dials from ns and reports whether the failure was a timeout:
// a dropped SYN times out, a rejected one is refused.
func dialTimeout(ns lab.NS, dst netip.AddrPort, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return ns.Dial(ctx, "tcp", dst.String())
}

// isTimeout reports whether err means nothing answered in time.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// exchange writes a fresh random message on c and expects the echo handler
// to send it back unchanged.
func exchange(c net.Conn, timeout time.Duration) error {
	msg := make([]byte, 100)
	rand.Read(msg)
	c.SetDeadline(time.Now().Add(timeout))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write(msg); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return fmt.Errorf("read echo: %w", err)
	}
	if string(got) != string(msg) {
		return fmt.Errorf("echo differs from what was sent")
	}
	return nil
}

// echo copies everything back until the peer closes.
func echo(c net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// peerIs checks that the server saw the connection coming from want: the
// gateway's egress address when tungate relays it (its upstream sockets are
// its own), the client's when the kernel forwards.
func peerIs(c net.Conn, want netip.Addr) error {
	got := c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
	if got != want {
		return fmt.Errorf("server saw the connection from %s, want %s", got, want)
	}
	return nil
}

// gatewayEgress is the gateway's wan0 address in dst's family.
func gatewayEgress(dst netip.Addr) netip.Addr {
	if dst.Is4() {
		return lab.GatewayWANV4
	}
	return lab.GatewayWANV6
}

// clientAddr is the client's address in dst's family.
func clientAddr(dst netip.Addr) netip.Addr {
	if dst.Is4() {
		return lab.ClientV4
	}
	return lab.ClientV6
}
