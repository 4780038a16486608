package test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tungate/tungate/internal/lab"
)

const (
	stormReloads = 100
	stormRules   = 10_000
	stormPort    = 6401 // the transfer
	stormIdle    = 6402 // a connection left idle through the storm
	// stormMax bounds the whole storm; it detects a hang, it is not a
	// speed requirement (each reload parses and compiles 10k rules).
	stormMax = 90 * time.Second
	// stormChunk is written between pauses of stormPace, so the transfer
	// spans the storm without saturating the CPU the reloads need.
	stormChunk = 64 << 10
	stormPace  = 2 * time.Millisecond
)

// stormConfig is a 10k-rule policy: stormRules-1 filler rules that never
// match the test's flows (sources in 198.19.0.0/16, which the lab does
// not use), then the rule allowing the transfer and idle ports. The two
// variants differ in every filler rule (ports and action), so each reload
// really swaps a different policy in.
func stormConfig(sock string, variant int) string {
	var b strings.Builder
	b.Grow(stormRules * 120)
	actions := [2]string{"drop", "reject"}
	for i := range stormRules - 1 {
		fmt.Fprintf(&b, "\n[[rule]]\nname = \"filler-%d\"\nproto = \"tcp\"\nsrc = \"198.19.%d.%d/32\"\ndst_port = %d\naction = %q\n",
			i, i>>8, i&0xff, 20000+(i+variant)%5000, actions[(i+variant)%2])
	}
	b.WriteString(allowTCPRule("storm-allowed", stormPort, stormIdle))
	return gatewayConfigAt(sock, b.String())
}

// TestReloadStorm reloads a 10k-rule policy 100 times by SIGHUP, each
// time waiting for the gateway's "reloaded" line, while a TCP transfer
// runs: the transfer arrives intact (SHA-256), a connection opened before
// the storm and left idle still works after it, and the gateway logged
// exactly 100 reloads and no refusal.
func TestReloadStorm(t *testing.T) {
	l := newLab(t)
	sock := filepath.Join(t.TempDir(), "tungate.sock")
	configs := [2]string{stormConfig(sock, 0), stormConfig(sock, 1)}
	gw := startGateway(t, l, configs[0])

	idleDst := netip.AddrPortFrom(lab.ServerV4, stormIdle)
	serve(t, l.Server, idleDst, echo)
	idle, err := dialTimeout(l.Client, idleDst, 10*time.Second)
	if err != nil {
		t.Fatalf("idle connection: %v", err)
	}
	defer idle.Close()
	if err := exchange(idle, 10*time.Second); err != nil {
		t.Fatalf("idle connection before the storm: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), stormMax)
	defer cancel()
	deadline, _ := ctx.Deadline()
	dst := netip.AddrPortFrom(lab.ServerV4, stormPort)
	ln, err := l.Server.Listen("tcp", dst.String())
	if err != nil {
		t.Fatalf("listen %s: %v", dst, err)
	}
	defer ln.Close()
	// Ends at EOF, on an error or at the deadline.
	received := serveOne(ln, deadline, func(c net.Conn) sideResult {
		var r sideResult
		r.n, r.sum, r.err = sink(c)
		return r
	})
	conn, err := l.Client.Dial(ctx, "tcp", dst.String())
	if err != nil {
		t.Fatalf("dial %s: %v", dst, err)
	}
	defer conn.Close()
	conn.SetDeadline(deadline)

	stormDone := make(chan struct{})
	sent := make(chan sideResult, 1)
	// Writes until the storm is over, then half-closes.
	go func() {
		var r sideResult
		r.n, r.sum, r.err = pacedSource(conn, stormDone)
		sent <- r
	}()

	// The storm. Each SIGHUP waits for its "reloaded" line, so signals
	// are not merged and every reload is counted.
	mark := len(gw.Logs())
	start := time.Now()
	var slowest time.Duration
	for i := range stormReloads {
		writeConfig(t, gw, configs[(i+1)%2])
		seen := 0
		n := len(gw.Logs())
		t0 := time.Now()
		if err := gw.Reload(); err != nil {
			close(stormDone)
			t.Fatalf("SIGHUP %d: %v", i+1, err)
		}
		_, err := gw.WaitFor(ctx, func(line string) bool {
			seen++
			return seen > n && (lab.MsgIs("reloaded")(line) || lab.MsgIs("reload refused, the running policy stays")(line))
		})
		if err != nil {
			close(stormDone)
			t.Fatalf("reload %d: no \"reloaded\" line: %v", i+1, err)
		}
		slowest = max(slowest, time.Since(t0))
	}
	storm := time.Since(start)
	close(stormDone)

	s := <-sent
	if s.err != nil {
		t.Fatalf("transfer, sending side after %d bytes: %v", s.n, s.err)
	}
	var r sideResult
	select {
	case r = <-received:
	case <-ctx.Done():
		t.Fatalf("transfer, receiving side did not finish: %v", ctx.Err())
	}
	if r.err != nil || r.n != s.n || string(r.sum) != string(s.sum) {
		t.Errorf("transfer through the storm: sent %d bytes (sha256 %x), received %d (sha256 %x), err %v", s.n, s.sum, r.n, r.sum, r.err)
	}
	if err := exchange(idle, 10*time.Second); err != nil {
		t.Errorf("the connection left idle through the storm: %v", err)
	}
	assertWorks(t, l, idleDst, "a new connection after the storm")

	var reloaded, refused int
	for _, line := range gw.Logs()[mark:] {
		switch {
		case lab.MsgIs("reloaded")(line):
			reloaded++
		case lab.MsgIs("reload refused, the running policy stays")(line):
			refused++
			t.Errorf("refused: %s", line)
		}
	}
	if reloaded != stormReloads {
		t.Errorf("gateway logged %d reloads, want %d", reloaded, stormReloads)
	}
	t.Logf("%d reloads of %d rules in %v (%v each on average, slowest %v); %d MiB transferred meanwhile",
		reloaded, stormRules, storm.Round(time.Millisecond), (storm / stormReloads).Round(time.Millisecond),
		slowest.Round(time.Millisecond), s.n>>20)
}

// pacedSource writes pseudo-random chunks until done is closed, then
// half-closes, and returns what it sent and its SHA-256.
func pacedSource(conn net.Conn, done <-chan struct{}) (int64, []byte, error) {
	var seed [32]byte
	rand.Read(seed[:])
	rng := mrand.NewChaCha8(seed)
	h := sha256.New()
	buf := make([]byte, stormChunk)
	var n int64
	for {
		select {
		case <-done:
			if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
				return n, nil, fmt.Errorf("close write: %w", err)
			}
			return n, h.Sum(nil), nil
		default:
		}
		if _, err := io.ReadFull(rng, buf); err != nil {
			return n, nil, err
		}
		h.Write(buf)
		m, err := conn.Write(buf)
		n += int64(m)
		if err != nil {
			return n, nil, err
		}
		time.Sleep(stormPace)
	}
}
