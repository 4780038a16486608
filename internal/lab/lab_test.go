package lab

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tungate/tungate/internal/testenv"
)

func newLab(t *testing.T) *Lab {
	t.Helper()
	testenv.RequireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l, err := New(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	return l
}

func netnsExists(t *testing.T, name string) bool {
	t.Helper()
	_, err := os.Stat(filepath.Join("/run/netns", name))
	return err == nil
}

func TestLabUpPingClose(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	names := l.Names()
	if len(names) != 3 {
		t.Fatalf("Names() = %v, want 3 namespaces", names)
	}
	for _, n := range names {
		if !netnsExists(t, n) {
			t.Errorf("namespace %s missing after New", n)
		}
	}

	for _, dst := range []struct {
		from NS
		to   string
	}{
		{l.Client, GatewayLANV4.String()},
		{l.Client, GatewayLANV6.String()},
		{l.Server, GatewayWANV4.String()},
		{l.Server, GatewayWANV6.String()},
	} {
		a := mustAddr(t, dst.to)
		if err := dst.from.Ping(ctx, a, 3*time.Second); err != nil {
			t.Errorf("ping %s from %s: %v", a, dst.from.Name, err)
		}
	}

	for _, key := range []string{"net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"} {
		if v, err := l.Gateway.Sysctl(key); err != nil || v != "1" {
			t.Errorf("gateway %s = %q, %v; want 1", key, v, err)
		}
		if v, err := l.Client.Sysctl(key); err != nil || v != "0" {
			t.Errorf("client %s = %q, %v; want 0 (only the gateway forwards)", key, v, err)
		}
	}

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if netnsExists(t, n) {
			t.Errorf("namespace %s still exists after Close", n)
		}
	}
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if strings.Contains(string(out), n) {
			t.Errorf("ip netns list still shows %s", n)
		}
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// Kernel forwarding is the baseline the gateway is compared against, so the
// lab must forward end to end by itself, both families.
func TestLabKernelForwarding(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	for _, dst := range []string{ServerV4.String(), ServerV6.String()} {
		if err := l.Client.Ping(ctx, mustAddr(t, dst), 3*time.Second); err != nil {
			t.Errorf("ping %s through the gateway namespace: %v", dst, err)
		}
	}

	ln, err := l.Server.Listen("tcp", "[::]:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		// Reply with the peer address so the test sees no NAT happened.
		io.WriteString(c, c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap().String())
	}()
	c, err := l.Client.Dial(ctx, "tcp", net.JoinHostPort(ServerV4.String(), itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != ClientV4.String() {
		t.Errorf("server saw peer %q, want %s", got, ClientV4)
	}

	// The client's own view: sockets made in Do stay in the namespace.
	if _, err := l.Client.Dial(ctx, "tcp", net.JoinHostPort(GatewayLANV4.String(), "1")); !isRefused(err) {
		t.Errorf("dial a closed port on the gateway: %v, want connection refused", err)
	}
}

func TestPingUnreachable(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Nobody has this address on the server link: no reply.
	err := l.Client.Ping(ctx, mustAddr(t, "198.18.2.99"), 500*time.Millisecond)
	if err == nil {
		t.Fatal("ping of an absent host succeeded")
	}
}

func TestNewCleansUpAfterFailure(t *testing.T) {
	testenv.RequireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	failAfterStep = func(step int) error {
		if step == 5 { // namespaces and veths exist, addresses half done
			return errors.New("injected failure")
		}
		return nil
	}
	defer func() { failAfterStep = nil }()
	prefix := "tgfail" + strconv.Itoa(os.Getpid())
	l, err := New(ctx, Options{Prefix: prefix})
	if err == nil {
		l.Close()
		t.Fatal("New succeeded despite the injected failure")
	}
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), prefix) {
		t.Errorf("namespaces left behind after a failed New:\n%s", out)
	}
}

func TestStartGatewayWithStandIn(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	bin := writeScript(t, `#!/bin/sh
[ "$1" = run ] && [ "$2" = -c ] && [ -f "$3" ] || { echo "bad args: $*" >&2; exit 2; }
grep -q '^marker = 1$' "$3" || { echo "config not passed" >&2; exit 2; }
trap 'echo "{\"msg\":\"reloaded\"}" >&2' HUP
trap 'echo "{\"msg\":\"stopping\"}" >&2; exit 0' TERM
echo '{"level":"INFO","msg":"starting"}' >&2
echo '{"level":"INFO","msg":"ready"}' >&2
while :; do sleep 0.05; done
`)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	g, err := l.StartGateway(ctx, bin, "marker = 1\n")
	if err != nil {
		t.Fatal(err)
	}
	if logs := g.Logs(); len(logs) != 2 || !MsgIs("starting")(logs[0]) {
		t.Errorf("Logs() = %q, want the two startup lines", logs)
	}
	if err := g.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := g.WaitFor(ctx, MsgIs("reloaded")); err != nil {
		t.Fatalf("after SIGHUP: %v\n%s", err, g.Output())
	}
	if err := g.Stop(5 * time.Second); err != nil {
		t.Fatalf("Stop: %v\n%s", err, g.Output())
	}
	if _, err := g.WaitFor(ctx, MsgIs("stopping")); err != nil {
		t.Errorf("no SIGTERM handling seen: %v", err)
	}
	if _, err := os.Stat(g.ConfigPath()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("config file left behind: %v", err)
	}
	if _, err := g.WaitFor(ctx, MsgIs("never")); !errors.Is(err, ErrGatewayExited) {
		t.Errorf("WaitFor after exit = %v, want ErrGatewayExited", err)
	}
}

func TestStartGatewayExitsEarly(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	bin := writeScript(t, "#!/bin/sh\necho 'tun: open /dev/net/tun: boom' >&2\nexit 1\n")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := l.StartGateway(ctx, bin, "")
	if err == nil {
		t.Fatal("StartGateway succeeded with a gateway that exits")
	}
	if !strings.Contains(err.Error(), "boom") {
		t.Errorf("error does not carry the gateway's stderr: %v", err)
	}
}

func TestStartGatewayNeverReady(t *testing.T) {
	t.Parallel()
	testenv.RequireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l, err := New(ctx, Options{ReadyTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	bin := writeScript(t, "#!/bin/sh\ntrap 'exit 0' TERM\necho waiting >&2\nwhile :; do sleep 0.05; done\n")
	_, err = l.StartGateway(ctx, bin, "")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("StartGateway = %v, want a ready timeout", err)
	}
}

func writeScript(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "fake-tungate")
	if err := os.WriteFile(p, []byte(text), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}
