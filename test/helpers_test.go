package test

import (
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tungate/tungate/internal/lab"
	"github.com/tungate/tungate/internal/testenv"
)

// Names and numbers of the gateway every test runs; the shutdown test checks
// that exactly these are gone afterwards.
const (
	tunName     = "tungate0"
	steerTable  = 7321
	steerPrio   = 7321
	labSetupMax = 30 * time.Second
)

// newLab builds a fresh client–gateway–server lab and deletes it when the
// test ends, also when it fails.
func newLab(t *testing.T) *lab.Lab {
	t.Helper()
	testenv.RequireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), labSetupMax)
	defer cancel()
	l, err := lab.New(ctx, lab.Options{
		Prefix:       "tge2e",
		Log:          slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
		ReadyTimeout: 15 * time.Second,
	})
	if err != nil {
		t.Fatalf("lab.New: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("lab.Close: %v", err)
		}
	})
	return l
}

// testWriter sends lab diagnostics to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// gatewayConfig is a full config for the lab's gateway namespace: steering
// from lan0 into tungate0, egress through wan0, default drop, every decision
// logged (so failures show what the gateway decided), then rules. The
// control socket lives in a per-test directory: namespaces share the file
// system, so the default path would collide between tests.
func gatewayConfig(t *testing.T, rules string) string {
	t.Helper()
	return gatewayConfigAt(filepath.Join(t.TempDir(), "tungate.sock"), rules)
}

// gatewayConfigAt is gatewayConfig with a given control socket path, for
// tests that rewrite the file and must change nothing but the rules.
func gatewayConfigAt(sock, rules string) string {
	return fmt.Sprintf(`[tun]
name = %q

[routing]
steer    = [%q]
table    = %d
priority = %d

[egress]
interface = %q

[control]
socket = %q

[log]
level     = "debug"
decisions = "all"
rate      = "1000/s"

[defaults]
policy = "drop"
%s`, tunName, lab.GatewayLANIf, steerTable, steerPrio, lab.GatewayWANIf, sock, rules)
}

// allowTCPRule is one rule allowing TCP to the given ports.
func allowTCPRule(name string, ports ...int) string {
	ps := make([]string, len(ports))
	for i, p := range ports {
		ps[i] = fmt.Sprint(p)
	}
	return fmt.Sprintf(`
[[rule]]
name     = %q
proto    = "tcp"
dst_port = [%s]
action   = "allow"
`, name, strings.Join(ps, ", "))
}

// startGateway runs the real binary in the lab's gateway namespace and, if
// the test fails, puts the gateway's whole log into the test output. The
// lab's Close stops it.
func startGateway(t *testing.T, l *lab.Lab, config string) *lab.Gateway {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	gw, err := l.StartGateway(ctx, tungateBin, config)
	if err != nil {
		t.Fatalf("start gateway: %v\nconfig:\n%s", err, config)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gateway log (%d lines):\n%s", len(gw.Logs()), gw.Output())
		}
	})
	return gw
}

// ipOut runs `ip -n NS args...` and returns its trimmed output.
func ipOut(t *testing.T, ns lab.NS, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", append([]string{"-n", ns.Name}, args...)...).CombinedOutput()
	if err != nil {
		return strings.TrimSpace(string(out)), fmt.Errorf("ip -n %s %s: %w: %s", ns.Name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out)), nil
}
