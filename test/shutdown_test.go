package test

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tungate/tungate/internal/lab"
)

// TestShutdownCleansUp stops the gateway with SIGTERM and checks that it
// exits promptly with status 0, takes its TUN device with it, and leaves
// its steering in place with nowhere to go: the rules still send the
// client's traffic to the steering table, whose only routes are the
// unreachable defaults, so nothing crosses unfiltered while tungate is
// stopped (a connection attempt fails at once). tungate cleanup then
// removes every rule and route. The same checks run first against the
// live gateway, so they are known to see what tungate installs.
func TestShutdownCleansUp(t *testing.T) {
	l := newLab(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "gw.toml")
	cfgText := gatewayConfigAt(filepath.Join(dir, "tungate.sock"), allowTCPRule("web", 80))
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o644); err != nil {
		t.Fatal(err)
	}
	gw := startGateway(t, l, cfgText)

	// Traffic through it first, so there is state to tear down.
	dst := netip.AddrPortFrom(lab.ServerV4, 80)
	serve(t, l.Server, dst, echo)
	c, err := dialTimeout(l.Client, dst, 10*time.Second)
	if err != nil {
		t.Fatalf("dial through the gateway: %v", err)
	}
	defer c.Close()
	if err := exchange(c, 10*time.Second); err != nil {
		t.Fatalf("exchange through the gateway: %v", err)
	}

	live := steeringState(t, l.Gateway)
	for _, p := range live.problems(true) {
		t.Errorf("while running: %s", p)
	}
	if t.Failed() {
		t.FailNow()
	}

	began := time.Now()
	if err := gw.Process().Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-gw.Exited():
		t.Logf("exited %v after SIGTERM", time.Since(began).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatalf("still running 10s after SIGTERM")
	}
	// Stop on an exited gateway only reports how it exited.
	if err := gw.Stop(time.Second); err != nil {
		t.Errorf("exit status not 0: %v", err)
	}
	if _, err := waitLogLine(gw, "stopped"); err != nil {
		t.Errorf("no \"stopped\" log line: %v", err)
	}

	after := steeringState(t, l.Gateway)
	if after.link != "" {
		t.Errorf("after exit: TUN device %s left behind: %s", tunName, after.link)
	}
	for _, r := range []struct{ what, got string }{{"IPv4 rules", after.rules4}, {"IPv6 rules", after.rules6}} {
		if r.got == "" {
			t.Errorf("after exit: %s to table %d are gone: a stopped gateway must keep refusing steered traffic", r.what, steerTable)
		}
	}
	for _, tb := range []struct{ what, got string }{{"IPv4", after.table4}, {"IPv6", after.table6}} {
		if !strings.HasPrefix(tb.got, "unreachable default") || strings.Count(tb.got, "\n") != 0 {
			t.Errorf("after exit: %s table %d is %q; want only the unreachable default", tb.what, steerTable, tb.got)
		}
	}
	// Nothing crosses while tungate is stopped: the client is refused at
	// once (the kernel answers for the unreachable route), not forwarded.
	if c, err := dialTimeout(l.Client, dst, 5*time.Second); err == nil {
		c.Close()
		t.Errorf("a connection crossed the stopped gateway")
	} else if !strings.Contains(err.Error(), "unreachable") && !strings.Contains(err.Error(), "no route") {
		t.Errorf("dial through the stopped gateway: %v; want host/network unreachable", err)
	}

	out, errOut, code := cli(t, l, "cleanup", "-c", cfgPath)
	if code != 0 || !strings.Contains(out, "removed") {
		t.Fatalf("tungate cleanup: exit %d\n%s%s", code, out, errOut)
	}
	t.Logf("%s", strings.TrimSpace(out))
	for _, p := range steeringState(t, l.Gateway).problems(false) {
		t.Errorf("after tungate cleanup: %s", p)
	}
	// And the kernel forwards again, as it did before tungate.
	if c, err := dialTimeout(l.Client, dst, 5*time.Second); err != nil {
		t.Errorf("dial after cleanup: %v; want the kernel to forward", err)
	} else {
		c.Close()
	}
}

// steering is what tungate installs in the gateway namespace.
type steering struct {
	link           string // `ip link show tungate0`, "" when absent
	rules4, rules6 string // ip rules that look up the steering table
	table4, table6 string // routes in the steering table
}

func steeringState(t *testing.T, ns lab.NS) steering {
	t.Helper()
	var s steering
	if out, err := ipOut(t, ns, "link", "show", tunName); err == nil {
		s.link = out
	}
	lookup := fmt.Sprintf("lookup %d", steerTable)
	for _, f := range []struct {
		fam   string
		rules *string
		table *string
	}{{"-4", &s.rules4, &s.table4}, {"-6", &s.rules6, &s.table6}} {
		out, err := ipOut(t, ns, f.fam, "rule", "show")
		if err != nil {
			t.Fatal(err)
		}
		var hits []string
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, lookup) {
				hits = append(hits, line)
			}
		}
		*f.rules = strings.Join(hits, "; ")
		// A table that never held a route makes some iproute2 versions
		// fail rather than print nothing; both mean empty.
		if out, err := ipOut(t, ns, f.fam, "route", "show", "table", fmt.Sprint(steerTable)); err == nil {
			*f.table = out
		}
	}
	return s
}

// problems lists how s differs from a running gateway's steering (running)
// or from a clean namespace (!running).
func (s steering) problems(running bool) []string {
	var p []string
	check := func(what, got string) {
		switch {
		case running && got == "":
			p = append(p, what+" missing")
		case !running && got != "":
			p = append(p, what+" left behind: "+got)
		}
	}
	check("TUN device "+tunName, s.link)
	check(fmt.Sprintf("IPv4 ip rule to table %d", steerTable), s.rules4)
	check(fmt.Sprintf("IPv6 ip rule to table %d", steerTable), s.rules6)
	check(fmt.Sprintf("IPv4 routes in table %d", steerTable), s.table4)
	check(fmt.Sprintf("IPv6 routes in table %d", steerTable), s.table6)
	return p
}
