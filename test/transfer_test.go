package test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/tungate/tungate/internal/lab"
)

const (
	transferSize = 50 << 20
	transferPort = 5201
	// transferMax bounds one transfer; far above any sane duration, it is
	// a hang detector, not a speed requirement.
	transferMax = 3 * time.Minute
)

// transferCase is one direction over one address family.
type transferCase struct {
	name string
	dst  netip.Addr
	up   bool // client -> server; else server -> client
}

var transferCases = []transferCase{
	{"ipv4/upload", lab.ServerV4, true},
	{"ipv4/download", lab.ServerV4, false},
	{"ipv6/upload", lab.ServerV6, true},
	{"ipv6/download", lab.ServerV6, false},
}

// TestTransfer moves 50 MiB each way over IPv4 and IPv6, first through
// plain kernel forwarding in the lab (no tungate: the reference), then
// through the gateway, and checks every byte by SHA-256. Durations are
// logged side by side, never asserted.
func TestTransfer(t *testing.T) {
	l := newLab(t)

	kernel := make(map[string]time.Duration)
	for _, c := range transferCases {
		d, err := transfer(l, c, clientAddr(c.dst))
		if err != nil {
			t.Fatalf("kernel forwarding reference %s (lab broken, gateway not involved yet): %v", c.name, err)
		}
		kernel[c.name] = d
	}

	startGateway(t, l, gatewayConfig(t, allowTCPRule("transfer", transferPort)))
	for _, c := range transferCases {
		t.Run(c.name, func(t *testing.T) {
			d, err := transfer(l, c, gatewayEgress(c.dst))
			if err != nil {
				t.Fatalf("through tungate: %v", err)
			}
			t.Logf("50 MiB %s: tungate %v (%s), kernel forwarding %v (%s)",
				c.name, d.Round(time.Millisecond), rate(d), kernel[c.name].Round(time.Millisecond), rate(kernel[c.name]))
		})
	}
}

func rate(d time.Duration) string {
	if d <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f Mbit/s", float64(transferSize)*8/d.Seconds()/1e6)
}

// sideResult is what one end of a transfer saw.
type sideResult struct {
	n    int64
	sum  []byte
	peer netip.Addr
	err  error
}

// serveOne accepts one connection on ln and returns, on the channel, what
// serve makes of it with deadline set, or the accept error. The goroutine
// ends when serve returns; ln.Close unblocks Accept when the client never
// got through.
func serveOne(ln net.Listener, deadline time.Time, serve func(net.Conn) sideResult) <-chan sideResult {
	out := make(chan sideResult, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			out <- sideResult{err: err}
			return
		}
		defer c.Close()
		c.SetDeadline(deadline)
		out <- serve(c)
	}()
	return out
}

// transfer runs one 50 MiB transfer and returns how long it took from dial
// to both ends agreeing. The server must see the connection come from
// wantPeer, which tells tungate's relay from kernel forwarding.
func transfer(l *lab.Lab, c transferCase, wantPeer netip.Addr) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), transferMax)
	defer cancel()
	deadline, _ := ctx.Deadline()
	dst := netip.AddrPortFrom(c.dst, transferPort)

	ln, err := l.Server.Listen("tcp", dst.String())
	if err != nil {
		return 0, fmt.Errorf("listen %s: %w", dst, err)
	}
	defer ln.Close()

	var seed [32]byte
	rand.Read(seed[:])
	server := serveOne(ln, deadline, func(conn net.Conn) sideResult {
		r := sideResult{peer: conn.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()}
		if c.up {
			r.n, r.sum, r.err = sink(conn)
		} else {
			r.n, r.sum, r.err = source(conn, seed)
		}
		return r
	})

	start := time.Now()
	conn, err := l.Client.Dial(ctx, "tcp", dst.String())
	if err != nil {
		return 0, fmt.Errorf("dial %s: %w", dst, err)
	}
	defer conn.Close()
	conn.SetDeadline(deadline)
	var cl sideResult
	if c.up {
		cl.n, cl.sum, cl.err = source(conn, seed)
	} else {
		cl.n, cl.sum, cl.err = sink(conn)
	}
	if cl.err != nil {
		return 0, fmt.Errorf("client side after %d bytes: %w", cl.n, cl.err)
	}
	var sv sideResult
	select {
	case sv = <-server:
	case <-ctx.Done():
		return 0, fmt.Errorf("server side did not finish: %w", ctx.Err())
	}
	d := time.Since(start)
	if sv.err != nil {
		return 0, fmt.Errorf("server side after %d bytes: %w", sv.n, sv.err)
	}
	if cl.n != transferSize || sv.n != transferSize {
		return 0, fmt.Errorf("bytes: client %d, server %d, want %d each", cl.n, sv.n, transferSize)
	}
	if !bytes.Equal(cl.sum, sv.sum) {
		return 0, fmt.Errorf("SHA-256 differs: sent %x, received %x", pick(c.up, cl.sum, sv.sum), pick(c.up, sv.sum, cl.sum))
	}
	if sv.peer != wantPeer {
		return 0, fmt.Errorf("server saw the connection from %s, want %s", sv.peer, wantPeer)
	}
	return d, nil
}

func pick(first bool, a, b []byte) []byte {
	if first {
		return a
	}
	return b
}

// source writes transferSize pseudo-random bytes, then half-closes so the
// sink sees EOF while the connection stays open for the sink's side.
func source(conn net.Conn, seed [32]byte) (int64, []byte, error) {
	h := sha256.New()
	data := io.TeeReader(io.LimitReader(mrand.NewChaCha8(seed), transferSize), h)
	n, err := io.CopyBuffer(conn, data, make([]byte, 256<<10))
	if err != nil {
		return n, nil, err
	}
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		return n, nil, fmt.Errorf("close write: %w", err)
	}
	return n, h.Sum(nil), nil
}

// sink reads to EOF and hashes what it got.
func sink(conn net.Conn) (int64, []byte, error) {
	h := sha256.New()
	n, err := io.CopyBuffer(h, conn, make([]byte, 256<<10))
	return n, h.Sum(nil), err
}
