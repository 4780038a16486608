package test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tungate/tungate/control"
	"github.com/tungate/tungate/internal/lab"
)

const (
	controlPort = 6101
	controlRule = "ctl-web"
	// controlRounds of 100-byte echoes go over the connection under test.
	controlRounds = 5
)

// cli runs the tungate binary inside the gateway namespace, as an operator
// on the gateway host would, and returns stdout, stderr and the exit status.
func cli(t *testing.T, l *lab.Lab, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := l.Gateway.Command(ctx, tungateBin, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("tungate %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errOut.String(), code
}

// TestControl drives the operator subcommands against a running gateway:
// the flow a client opened is listed (text and JSON) with its tuples, state,
// rule and counters, the rule's counters cover it, deleting it by tuple
// removes it, and reload reports a refused config with its position.
func TestControl(t *testing.T) {
	l := newLab(t)
	sock := filepath.Join(t.TempDir(), "tungate.sock")
	gw := startGateway(t, l, gatewayConfigAt(sock, allowTCPRule(controlRule, controlPort)))

	fi, err := os.Lstat(sock)
	if err != nil {
		t.Fatalf("control socket: %v", err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("control socket mode %v, want a socket with 0600", fi.Mode())
	}

	dst := netip.AddrPortFrom(lab.ServerV4, controlPort)
	// Deleting the flow strands this connection (its FIN no longer matches
	// anything), so the server end is closed by the test, not by the peer.
	// Registered after serve, the cancel runs before serve's cleanup waits.
	release, cancelRelease := context.WithCancel(context.Background())
	serve(t, l.Server, dst, func(c net.Conn) {
		stop := context.AfterFunc(release, func() { c.Close() })
		defer stop()
		echo(c)
	})
	t.Cleanup(cancelRelease)
	conn, err := dialTimeout(l.Client, dst, 10*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", dst, err)
	}
	defer conn.Close()
	for i := range controlRounds {
		if err := exchange(conn, 10*time.Second); err != nil {
			t.Fatalf("exchange %d: %v", i, err)
		}
	}
	src := conn.LocalAddr().(*net.TCPAddr).AddrPort()
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	const sent = controlRounds * 100

	// Text listing: one conntrack -L style line for this flow.
	out, errOut, code := cli(t, l, "conntrack", "-s", sock)
	if code != 0 {
		t.Fatalf("tungate conntrack: exit %d\n%s%s", code, out, errOut)
	}
	orig := fmt.Sprintf("src=%s dst=%s sport=%d dport=%d ", src.Addr(), dst.Addr(), src.Port(), dst.Port())
	reply := fmt.Sprintf("src=%s dst=%s sport=%d dport=%d ", dst.Addr(), src.Addr(), dst.Port(), src.Port())
	lineRe := regexp.MustCompile(`^tcp +6 \d+ ESTABLISHED ` + regexp.QuoteMeta(orig) +
		`packets=(\d+) bytes=(\d+) ` + regexp.QuoteMeta(reply) +
		`packets=(\d+) bytes=(\d+) \[ASSURED\] rule=` + regexp.QuoteMeta(controlRule) + `$`)
	var line []string
	for _, l := range strings.Split(out, "\n") {
		if m := lineRe.FindStringSubmatch(l); m != nil {
			line = m
		}
	}
	if line == nil {
		t.Errorf("no ESTABLISHED [ASSURED] line for %s -> %s with rule=%s in:\n%s", src, dst, controlRule, out)
	} else {
		n := make([]uint64, 4)
		for i := range n {
			n[i], _ = strconv.ParseUint(line[i+1], 10, 64)
		}
		// Each direction carried the echoes' payload plus headers.
		if n[0] == 0 || n[1] < sent || n[2] == 0 || n[3] < sent {
			t.Errorf("counters orig packets=%d bytes=%d reply packets=%d bytes=%d, want bytes >= %d each way: %s",
				n[0], n[1], n[2], n[3], sent, line[0])
		}
		t.Logf("listed: %s", line[0])
	}
	if !strings.Contains(errOut, "flow entries have been shown") {
		t.Errorf("stderr %q lacks the summary", errOut)
	}

	// JSON listing: the same flow under the documented field names.
	out, errOut, code = cli(t, l, "conntrack", "-s", sock, "--json")
	if code != 0 {
		t.Fatalf("tungate conntrack --json: exit %d\n%s%s", code, out, errOut)
	}
	var flows []control.Flow
	if err := json.Unmarshal([]byte(out), &flows); err != nil {
		t.Fatalf("conntrack --json output is not a JSON array: %v\n%s", err, out)
	}
	var f *control.Flow
	for i := range flows {
		o := flows[i].Orig
		if flows[i].Proto == "tcp" && o.Src == src.Addr() && o.SrcPort == src.Port() && o.Dst == dst.Addr() && o.DstPort == dst.Port() {
			f = &flows[i]
		}
	}
	if f == nil {
		t.Errorf("--json lacks the flow %s -> %s:\n%s", src, dst, out)
	} else if f.State != "ESTABLISHED" || !f.Assured || !f.SeenReply || f.Rule != controlRule || f.Action != "allow" ||
		f.Reply.Src != dst.Addr() || f.Reply.Dst != src.Addr() || f.Reply.SrcPort != dst.Port() || f.Reply.DstPort != src.Port() ||
		f.Orig.Bytes < sent || f.Reply.Bytes < sent || f.TimeoutMS <= 0 {
		t.Errorf("--json flow: %+v", *f)
	} else {
		// The window tracker's view: Linux peers negotiate window scaling,
		// each sender's data ends within what the other side allowed, and
		// a connection seen from its SYN is checked, not liberal.
		for _, w := range []*control.Window{f.Orig.Window, f.Reply.Window} {
			if w == nil || w.WScale == 0 || w.Liberal || w.MaxWin == 0 || int32(w.MaxEnd-w.End) < 0 {
				t.Errorf("--json window state: orig %+v reply %+v", f.Orig.Window, f.Reply.Window)
				break
			}
		}
	}
	// Filters select on the original direction, server side.
	out, _, code = cli(t, l, "conntrack", "-s", sock, "--proto", "tcp", "--src", src.Addr().String()+"/32", "--dst", dst.String(), "--state", "established", "--rule", controlRule)
	if code != 0 || !strings.Contains(out, orig) {
		t.Errorf("filtered listing lacks the flow (exit %d):\n%s", code, out)
	}
	for _, f := range [][]string{{"--proto", "udp"}, {"--src", dst.Addr().String()}, {"--state", "TIME_WAIT"}, {"--rule", "nope"}} {
		out, _, code = cli(t, l, append([]string{"conntrack", "-s", sock}, f...)...)
		if code != 0 || strings.Contains(out, orig) {
			t.Errorf("conntrack %v lists the flow it excludes (exit %d):\n%s", f, code, out)
		}
	}
	if _, errOut, code := cli(t, l, "conntrack", "-s", sock, "--state", "OPEN"); code != 2 || !strings.Contains(errOut, "state") {
		t.Errorf("a bad filter: exit %d, %q", code, errOut)
	}
	if _, errOut, code := cli(t, l, "conntrack", "-s", sock, "flush", "--proto", "udp", "--dst", dst.String()); code != 0 || !strings.Contains(errOut, "0 flow entries have been deleted") {
		t.Errorf("a flush that selects nothing: exit %d, %q", code, errOut)
	}
	out, errOut, code = cli(t, l, "conntrack", "-s", sock, "-v")
	if code != 0 || !strings.Contains(out, orig) || !regexp.MustCompile(`win=\[\d+:\d+\] maxwin=\d+ wscale=\d+ `).MatchString(out) {
		t.Errorf("tungate conntrack -v: exit %d, no window state\n%s%s", code, out, errOut)
	}

	out, errOut, code = cli(t, l, "conntrack", "-s", sock, "--stats")
	if code != 0 || !regexp.MustCompile(`(?m)^flows=\d+ max_flows=\d+ found=\d+ .* half_open_limit=\d+ slots=[1-9]\d* rebuilds=\d+\nfragments=\d+ reassembled=\d+ atomic=\d+ held=\d+ datagrams=\d+ memory=\d+`).MatchString(strings.TrimSpace(out)) {
		t.Errorf("tungate conntrack --stats: exit %d\n%s%s", code, out, errOut)
	}

	// Rule counters cover at least this flow.
	out, errOut, code = cli(t, l, "rules", "-s", sock, "--json")
	if code != 0 {
		t.Fatalf("tungate rules --json: exit %d\n%s%s", code, out, errOut)
	}
	var rules []control.Rule
	if err := json.Unmarshal([]byte(out), &rules); err != nil {
		t.Fatalf("rules --json: %v\n%s", err, out)
	}
	var r *control.Rule
	for i := range rules {
		if rules[i].Name == controlRule {
			r = &rules[i]
		}
	}
	switch {
	case r == nil:
		t.Errorf("rules --json lacks %s:\n%s", controlRule, out)
	case r.Flows < 1 || r.LastHit == nil:
		t.Errorf("rule %s counted no flow: %+v", controlRule, *r)
	case r.Packets < 2*controlRounds || r.Bytes < 2*sent:
		t.Errorf("rule %s counted packets=%d bytes=%d, want at least %d packets and %d bytes (the echoes both ways); "+
			"is the data plane calling policy.CountPacket?", controlRule, r.Packets, r.Bytes, 2*controlRounds, 2*sent)
	}
	if out, _, code := cli(t, l, "rules", "-s", sock); code != 0 || !strings.Contains(out, controlRule) || !strings.Contains(out, "default") {
		t.Errorf("tungate rules: exit %d\n%s", code, out)
	}

	// Delete by tuple, given in the reply direction.
	out, errOut, code = cli(t, l, "conntrack", "-s", sock, "delete", "--proto", "tcp", "--src", dst.String(), "--dst", src.String())
	if code != 0 {
		t.Errorf("tungate conntrack delete: exit %d\n%s%s", code, out, errOut)
	}
	out, _, _ = cli(t, l, "conntrack", "-s", sock)
	if strings.Contains(out, orig) {
		t.Errorf("flow still listed after delete:\n%s", out)
	}
	if _, errOut, code := cli(t, l, "conntrack", "-s", sock, "delete", "--proto", "tcp", "--src", dst.String(), "--dst", src.String()); code != 1 || !strings.Contains(errOut, "no such flow") {
		t.Errorf("second delete: exit %d, stderr %q; want 1 and \"no such flow\"", code, errOut)
	}
	cancelRelease()

	// A refused reload prints FILE:LINE:COL and exits 1.
	bad := gatewayConfigAt(sock, allowTCPRule(controlRule, 99999))
	wantLine, lineText := lineOf(t, bad, "dst_port = [99999]")
	writeConfig(t, gw, bad)
	out, errOut, code = cli(t, l, "reload", "-s", sock)
	posRe := regexp.MustCompile(regexp.QuoteMeta(gw.ConfigPath()) + `:(\d+):(\d+): `)
	if code != 1 {
		t.Errorf("reload of a bad config: exit %d, want 1\n%s%s", code, out, errOut)
	}
	if m := posRe.FindStringSubmatch(errOut); m == nil {
		t.Errorf("reload refusal lacks %s:LINE:COL:\n%s", gw.ConfigPath(), errOut)
	} else if n, _ := strconv.Atoi(m[1]); n != wantLine {
		t.Errorf("refusal points at line %d, want %d (%q):\n%s", n, wantLine, lineText, errOut)
	}

	// A good config is applied, through the same path SIGHUP takes.
	writeConfig(t, gw, gatewayConfigAt(sock, allowTCPRule(controlRule, controlPort, controlPort+1)))
	mark := len(gw.Logs())
	out, errOut, code = cli(t, l, "reload", "-s", sock)
	if code != 0 {
		t.Fatalf("reload of a good config: exit %d\n%s%s", code, out, errOut)
	}
	waitLog(t, gw, mark, "reloaded")
	serve(t, l.Server, netip.AddrPortFrom(lab.ServerV4, controlPort+1), echo)
	assertWorks(t, l, netip.AddrPortFrom(lab.ServerV4, controlPort+1), "after reload through the control socket, the newly allowed port")

	// Nothing answers on a wrong socket path: a clear error, exit 1.
	if _, errOut, code := cli(t, l, "conntrack", "-s", sock+".nope"); code != 1 || !strings.Contains(errOut, "cannot reach") {
		t.Errorf("wrong socket: exit %d, stderr %q", code, errOut)
	}
}

// TestControlSocketLifecycle checks that a second gateway on the same
// socket is refused while the first runs, and that the socket file is gone
// once the gateway has stopped.
func TestControlSocketLifecycle(t *testing.T) {
	l := newLab(t)
	sock := filepath.Join(t.TempDir(), "tungate.sock")
	cfg := gatewayConfigAt(sock, allowTCPRule(controlRule, controlPort))
	gw := startGateway(t, l, cfg)

	// Same socket, in the same namespace: refused before it touches the
	// TUN. (`check`-style failure: exit non-zero, the message names it.)
	second := filepath.Join(t.TempDir(), "second.toml")
	if err := os.WriteFile(second, []byte(strings.Replace(cfg, `name = "tungate0"`, `name = "tungate1"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := cli(t, l, "run", "-c", second)
	if code == 0 || !strings.Contains(out+errOut, "control socket in use") {
		t.Errorf("second gateway on %s: exit %d\n%s%s", sock, code, out, errOut)
	}
	if out, _, code := cli(t, l, "rules", "-s", sock); code != 0 || !strings.Contains(out, controlRule) {
		t.Errorf("first gateway's socket after the refused start: exit %d\n%s", code, out)
	}

	if err := gw.Stop(15 * time.Second); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("control socket after stop: %v, want removed", err)
	}
}

// TestConntrackEvents follows the gateway's flow events with the real
// binary, filtered to one destination: a new connection shows up as a
// [NEW] line with its tuple and rule, and the feed ends after --count.
func TestConntrackEvents(t *testing.T) {
	l := newLab(t)
	sock := filepath.Join(t.TempDir(), "tungate.sock")
	startGateway(t, l, gatewayConfigAt(sock, allowTCPRule(controlRule, controlPort)))
	dst := netip.AddrPortFrom(lab.ServerV4, controlPort)
	serve(t, l.Server, dst, echo)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	feed := l.Gateway.Command(ctx, tungateBin, "conntrack", "-s", sock, "events", "--count", "1", "--for", "20s",
		"--proto", "tcp", "--dst", dst.String(), "--state", "SYN_SENT")
	var out, errOut bytes.Buffer
	feed.Stdout, feed.Stderr = &out, &errOut
	if err := feed.Start(); err != nil {
		t.Fatal(err)
	}
	fed := make(chan error, 1)
	go func() { fed <- feed.Wait() }() // ends by --count, --for or ctx
	// The feed subscribes shortly after it starts; open connections until
	// one is seen (each opens with SYN_SENT, the state the filter wants).
	var ferr error
	opened := 0
wait:
	for {
		select {
		case ferr = <-fed:
			break wait
		case <-time.After(200 * time.Millisecond):
			c, err := dialTimeout(l.Client, dst, 5*time.Second)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			c.Close()
			opened++
		}
	}
	if ferr != nil {
		t.Fatalf("tungate conntrack events: %v\n%s%s", ferr, out.String(), errOut.String())
	}
	re := regexp.MustCompile(`^\[NEW\] tcp +6 \d+ SYN_SENT src=198\.18\.1\.2 dst=` + regexp.QuoteMeta(dst.Addr().String()) +
		` sport=\d+ dport=` + strconv.Itoa(int(dst.Port())) + ` .*\[UNREPLIED\] .*rule=` + regexp.QuoteMeta(controlRule) + "\n$")
	if !re.MatchString(out.String()) || !strings.Contains(errOut.String(), "1 flow events have been shown") {
		t.Errorf("feed output after %d connections:\n%s%s", opened, out.String(), errOut.String())
	}
}
