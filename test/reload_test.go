package test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/tungate/tungate/internal/lab"
)

const (
	reloadPortA = 6001
	reloadPortB = 6002
	// dropWait is how long a dial waits before calling the SYN dropped.
	dropWait = 3 * time.Second
)

// twoRules allows or drops ports A and B, in that order.
func twoRules(actionA, actionB string, portB string) string {
	return fmt.Sprintf(`
[[rule]]
name     = "port-a"
proto    = "tcp"
dst_port = %d
action   = %q

[[rule]]
name     = "port-b"
proto    = "tcp"
dst_port = %s
action   = %q
`, reloadPortA, actionA, portB, actionB)
}

// TestReload swaps the policy with SIGHUP: new flows follow the new rules,
// the established flow keeps its verdict, and a bad file is refused with its
// position while the running policy stays.
func TestReload(t *testing.T) {
	l := newLab(t)
	sock := filepath.Join(t.TempDir(), "tungate.sock")
	gw := startGateway(t, l, gatewayConfigAt(sock, twoRules("allow", "drop", strconv.Itoa(reloadPortB))))

	a := netip.AddrPortFrom(lab.ServerV4, reloadPortA)
	b := netip.AddrPortFrom(lab.ServerV4, reloadPortB)
	serve(t, l.Server, a, echo)
	serve(t, l.Server, b, echo)

	// Before: A allowed, B dropped.
	long, err := dialTimeout(l.Client, a, 10*time.Second)
	if err != nil {
		t.Fatalf("before reload: dial A %s: %v", a, err)
	}
	defer long.Close()
	if err := exchange(long, 10*time.Second); err != nil {
		t.Fatalf("before reload: exchange on A: %v", err)
	}
	assertDropped(t, l, b, "before reload, B")

	// Reload: A dropped, B allowed.
	writeConfig(t, gw, gatewayConfigAt(sock, twoRules("drop", "allow", strconv.Itoa(reloadPortB))))
	mark := len(gw.Logs())
	if err := gw.Reload(); err != nil {
		t.Fatalf("SIGHUP: %v", err)
	}
	waitLog(t, gw, mark, "reloaded")

	assertWorks(t, l, b, "after reload, new connection to B")
	assertDropped(t, l, a, "after reload, new connection to A")
	if err := exchange(long, 10*time.Second); err != nil {
		t.Errorf("after reload: the connection on A established before it stopped working: %v", err)
	}

	// A bad file: the 2nd rule's port is out of range. Refused, with the
	// position of that line; the policy loaded last stays.
	bad := gatewayConfigAt(sock, twoRules("drop", "allow", "99999"))
	wantLine, lineText := lineOf(t, bad, "dst_port = 99999")
	writeConfig(t, gw, bad)
	mark = len(gw.Logs())
	if err := gw.Reload(); err != nil {
		t.Fatalf("SIGHUP: %v", err)
	}
	refusal := waitLog(t, gw, mark, "reload refused, the running policy stays")
	rec, _ := lab.ParseLog(refusal)
	errText, _ := rec["err"].(string)
	posRe := regexp.MustCompile(regexp.QuoteMeta(gw.ConfigPath()) + `:(\d+):(\d+): `)
	m := posRe.FindStringSubmatch(errText)
	if m == nil {
		t.Errorf("refusal err %q lacks %s:LINE:COL:", errText, gw.ConfigPath())
	} else if line, _ := strconv.Atoi(m[1]); line != wantLine {
		t.Errorf("refusal points at line %s, want %d (%q): %s", m[1], wantLine, lineText, errText)
	} else {
		t.Logf("refusal: %s", errText)
	}

	assertWorks(t, l, b, "after refused reload, new connection to B")
	assertDropped(t, l, a, "after refused reload, new connection to A")
	if err := exchange(long, 10*time.Second); err != nil {
		t.Errorf("after refused reload: the connection on A stopped working: %v", err)
	}
}

// writeConfig replaces the gateway's config file in one step, so a reload
// racing the write can never read half a file.
func writeConfig(t *testing.T, gw *lab.Gateway, text string) {
	t.Helper()
	tmp := gw.ConfigPath() + ".new"
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, gw.ConfigPath()); err != nil {
		t.Fatal(err)
	}
}

// waitLog waits for a log line whose msg is msg among the lines after the
// first skip (taken before the signal, so a fast answer is not missed).
func waitLog(t *testing.T, gw *lab.Gateway, skip int, msg string) string {
	t.Helper()
	seen := 0
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	line, err := gw.WaitFor(ctx, func(line string) bool {
		seen++
		return seen > skip && lab.MsgIs(msg)(line)
	})
	if err != nil {
		t.Fatalf("waiting for log %q: %v", msg, err)
	}
	return line
}

// waitLogLine returns the first log line whose msg is msg, waiting briefly.
func waitLogLine(gw *lab.Gateway, msg string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return gw.WaitFor(ctx, lab.MsgIs(msg))
}

// assertWorks dials dst and exchanges data on a new connection.
func assertWorks(t *testing.T, l *lab.Lab, dst netip.AddrPort, what string) {
	t.Helper()
	c, err := dialTimeout(l.Client, dst, 10*time.Second)
	if err != nil {
		t.Errorf("%s (%s): dial: %v", what, dst, err)
		return
	}
	defer c.Close()
	if err := exchange(c, 10*time.Second); err != nil {
		t.Errorf("%s (%s): %v", what, dst, err)
	}
}

// assertDropped expects a dial to dst to time out: dropped, not refused.
func assertDropped(t *testing.T, l *lab.Lab, dst netip.AddrPort, what string) {
	t.Helper()
	c, err := dialTimeout(l.Client, dst, dropWait)
	switch {
	case err == nil:
		c.Close()
		t.Errorf("%s (%s): connected, want dropped", what, dst)
	case !isTimeout(err):
		t.Errorf("%s (%s): %v, want a timeout (dropped)", what, dst, err)
	}
}
