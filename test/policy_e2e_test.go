package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/tungate/tungate/control"
	"github.com/tungate/tungate/internal/lab"
)

const (
	// sshPort is rate limited: a source opening more than the burst is
	// banned for banTimeout.
	sshPort    = 6201
	sshBurst   = 3
	banTimeout = 8 * time.Second
	// auditPort is allowed, with an audit rule that would drop it.
	auditPort = 6202
	// dropDial is how long a dial waits before calling the SYN dropped.
	dropDial = 2 * time.Second
)

// banRules is a typical ban: sources in the dynamic set are dropped; a
// source opening connections to sshPort faster than the limit is added
// to it (its open flows ended); an audit rule watches auditPort.
func banRules() string {
	return fmt.Sprintf(`
[sets.ban]
type         = "cidr"
dynamic      = true
timeout      = "%s"
max_elements = 64

[[rule]]
name   = "banned"
src    = ["@ban"]
action = "drop"

[[rule]]
name     = "ssh-limit"
proto    = "tcp"
dst_port = %d
limit    = { rate = "1/s", burst = %d, per = "src" }
add_to   = { set = "ban", key = "src", flush_flows = true }
action   = "drop"
log      = true

[[rule]]
name     = "ssh"
proto    = "tcp"
dst_port = %d
action   = "allow"

[[rule]]
name     = "audit-block"
proto    = "tcp"
dst_port = %d
action   = "drop"
mode     = "audit"

[[rule]]
name     = "audited"
proto    = "tcp"
dst_port = %d
action   = "allow"
`, banTimeout, sshPort, sshBurst, sshPort, auditPort, auditPort)
}

// TestPolicyBanAuditCounters runs the issue-4 policy language end to end:
// a rate-limited port bans a source after its burst (new connections are
// dropped, its open connection is ended) and releases it after the set's
// timeout; an audit rule passes traffic and logs would-drop; `tungate
// rules` counts the flows exactly and at least the bytes sent.
func TestPolicyBanAuditCounters(t *testing.T) {
	l := newLab(t)
	sock := filepath.Join(t.TempDir(), "tungate.sock")
	gw := startGateway(t, l, gatewayConfigAt(sock, banRules()))
	ssh := netip.AddrPortFrom(lab.ServerV4, sshPort)
	aud := netip.AddrPortFrom(lab.ServerV4, auditPort)
	serve(t, l.Server, ssh, echo)
	serve(t, l.Server, aud, echo)

	// Audit: the connection works, the audit rule logs would-drop.
	c, err := dialTimeout(l.Client, aud, 10*time.Second)
	if err != nil {
		t.Fatalf("audited port: %v", err)
	}
	if err := exchange(c, 10*time.Second); err != nil {
		t.Errorf("audited port: %v", err)
	}
	c.Close()
	waitDecision(t, gw, map[string]string{"rule": "audit-block", "action": "would-drop", "reason": "audit"})

	// Within the burst every connection works (more may, as the bucket
	// refills at 1/s); the first refused one bans the source.
	var open net.Conn
	allowed := 0
	for i := 0; ; i++ {
		if i > 20 {
			t.Fatalf("%d connections allowed, none refused: the limit does not bite", allowed)
		}
		c, err := dialTimeout(l.Client, ssh, dropDial)
		if err != nil {
			if !isTimeout(err) {
				t.Fatalf("connection %d: %v, want a timeout (dropped)", i, err)
			}
			break
		}
		if err := exchange(c, 10*time.Second); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		allowed++
		if open != nil {
			open.Close()
		}
		open = c
	}
	if allowed < sshBurst {
		t.Errorf("%d connections allowed before the ban, want at least the burst %d", allowed, sshBurst)
	}
	waitDecision(t, gw, map[string]string{"rule": "ssh-limit", "action": "drop"})
	waitDecision(t, gw, map[string]string{"rule": "banned", "action": "drop"})
	// flush_flows ended the banned source's open connection.
	if err := exchange(open, 5*time.Second); err == nil {
		t.Errorf("the banned source's open connection still works")
	}
	open.Close()
	if c, err := dialTimeout(l.Client, aud, time.Second); err == nil {
		c.Close()
		t.Errorf("banned source reached another port")
	}

	// Released after the timeout: poll until a connection works.
	deadline := time.Now().Add(banTimeout + 15*time.Second)
	for {
		c, err := dialTimeout(l.Client, ssh, dropDial)
		if err == nil {
			if err := exchange(c, 10*time.Second); err != nil {
				t.Fatalf("after the ban: %v", err)
			}
			c.Close()
			allowed++
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still banned %v after the ban: %v", banTimeout+15*time.Second, err)
		}
	}

	rules := ruleCounters(t, l, sock)
	want := map[string]uint64{"ssh": uint64(allowed), "ssh-limit": 1, "audit-block": 1, "audited": 1}
	for name, flows := range want {
		r, ok := rules[name]
		if !ok {
			t.Errorf("rules --json lacks %s", name)
			continue
		}
		if r.Flows != flows {
			t.Errorf("rule %s counted %d flows, want %d", name, r.Flows, flows)
		}
	}
	// Each allowed connection exchanged 100 bytes each way.
	if r := rules["ssh"]; r.Bytes < uint64(allowed)*200 || r.Packets < uint64(allowed)*2 {
		t.Errorf("rule ssh counted %d packets, %d bytes; want at least %d and %d", r.Packets, r.Bytes, allowed*2, allowed*200)
	}
	if r := rules["audited"]; r.Bytes < 200 {
		t.Errorf("rule audited counted %d bytes, want at least 200", r.Bytes)
	}
	if r := rules["banned"]; r.Flows == 0 || r.Packets < r.Flows {
		t.Errorf("rule banned: %+v, want the dropped SYNs counted", r)
	}
	t.Logf("allowed %d; counters %+v", allowed, rules)
}

// waitDecision waits for a decision line with every key/value of want.
func waitDecision(t *testing.T, gw *lab.Gateway, want map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := gw.WaitFor(ctx, func(line string) bool {
		r, ok := lab.ParseLog(line)
		if !ok || r["msg"] != "decision" {
			return false
		}
		for k, v := range want {
			if r[k] != v {
				return false
			}
		}
		return true
	})
	if err != nil {
		t.Errorf("no decision line with %v: %v", want, err)
	}
}

// ruleCounters runs `tungate rules --json` and indexes the result by name.
func ruleCounters(t *testing.T, l *lab.Lab, sock string) map[string]control.Rule {
	t.Helper()
	out, errOut, code := cli(t, l, "rules", "-s", sock, "--json")
	if code != 0 {
		t.Fatalf("tungate rules --json: exit %d\n%s%s", code, out, errOut)
	}
	var rules []control.Rule
	if err := json.Unmarshal([]byte(out), &rules); err != nil {
		t.Fatalf("rules --json: %v\n%s", err, out)
	}
	m := make(map[string]control.Rule, len(rules))
	for _, r := range rules {
		m[r.Name] = r
	}
	return m
}
