package relay

import (
	"bytes"
	"errors"
	"net"
	"syscall"
	"testing"

	"github.com/tungate/tungate/policy"
)

// fakeInspector is a streaming matcher over a few literal patterns. It keeps
// the last len(pattern)-1 bytes per direction so a pattern split across
// Feed calls is still found. Like *policy.Inspector, every hit is terminal.
type fakeInspector struct {
	pats  []fakePattern
	tail  [2][]byte
	done  bool
	feeds [2]int // Feed calls per direction
	after int    // Feed calls after the hit, to prove the relay stopped feeding
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

// doneInspector mimics a nil *policy.Inspector passed as an Inspector:
// it is done from the start and must never be fed.
type doneInspector struct{}

func (*doneInspector) Feed(policy.StreamDir, []byte) (policy.Hit, bool) {
	panic("fed a done inspector")
}
func (*doneInspector) Done() bool { return true }

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
	go func() { c, err := ln.AcceptTCP(); ch <- res{c, err} }() // ends with the one accept
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

// isReset reports whether err is how a socket sees its peer's RST.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
