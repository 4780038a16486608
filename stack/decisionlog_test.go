package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tungate/tungate/policy"
)

func TestDecisionLogRateLimit(t *testing.T) {
	var out bytes.Buffer
	var suppressed atomic.Uint64
	now := time.Unix(1000, 0)
	d := newDecisionLog(slog.New(slog.NewJSONHandler(&out, nil)), &suppressed, func() time.Time { return now })
	d.setRate(2, 2)
	rec := &decisionRecord{
		rule: "r", action: "drop", proto: protoUDP,
		src: netip.MustParseAddrPort("198.18.1.2:5000"), dst: netip.MustParseAddrPort("[2001:2:0:2::1]:53"),
		reason: reasonRule,
	}
	for range 5 {
		d.write(rec)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || suppressed.Load() != 3 {
		t.Fatalf("after a burst of 5 at 2/s: %d lines, %d suppressed; want 2, 3", len(lines), suppressed.Load())
	}
	now = now.Add(time.Second)
	for range 5 {
		d.write(rec)
	}
	lines = strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 4 || suppressed.Load() != 6 {
		t.Fatalf("one second later: %d lines, %d suppressed; want 4, 6", len(lines), suppressed.Load())
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil {
		t.Fatalf("line is not JSON: %v", err)
	}
	want := map[string]string{"rule": "r", "action": "drop", "proto": "udp", "src": "198.18.1.2:5000", "dst": "[2001:2:0:2::1]:53", "reason": "rule"}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %s", k, m[k], v)
		}
	}
	if _, ok := m["pattern"]; ok {
		t.Errorf("pattern present on a non-payload decision")
	}
}

func TestDecisionLogPolicy(t *testing.T) {
	pol, err := policy.Compile(policy.Config{
		Defaults: policy.Defaults{Policy: "drop"},
		Rules: []policy.RuleConfig{
			{Name: "allow-web", Proto: policy.List{"tcp"}, DstPort: policy.List{int64(80)}, Action: "allow"},
			{Name: "allow-loud", Proto: policy.List{"tcp"}, DstPort: policy.List{int64(8080)}, Action: "allow", Log: true},
		},
		Log: policy.LogConfig{Decisions: "drops"},
	})
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, harnessOpts{noRun: true, pol: pol})
	var p parsed
	h.s.hook(synPkt(cli4, srv4, 1, 80), &p)
	if l := h.log.String(); l != "" {
		t.Errorf("decisions=drops logged an allow: %s", l)
	}
	h.s.hook(synPkt(cli4, srv4, 2, 8080), &p)
	if l := h.log.String(); !strings.Contains(l, `"rule":"allow-loud"`) {
		t.Errorf("rule with log=true not logged: %q", l)
	}
	h.s.hook(synPkt(cli4, srv4, 3, 9999), &p)
	if l := h.log.String(); !strings.Contains(l, `"rule":"default","action":"drop"`) || !strings.Contains(l, `"reason":"default"`) {
		t.Errorf("default drop not logged: %q", l)
	}
}

func TestSetPolicyKeepsEstablished(t *testing.T) {
	h, pkt := establishedUDP(t)
	denyAll, err := policy.Compile(policy.Config{Defaults: policy.Defaults{Policy: "drop"}})
	if err != nil {
		t.Fatal(err)
	}
	h.s.SetPolicy(denyAll)
	var p parsed
	if got := h.s.hook(pkt, &p); got != hookInject {
		t.Errorf("established flow after reload: action %d, want inject", got)
	}
	other := ipPkt(cli4, srv4, protoUDP, udpHdr(40001, portUDPAllow, []byte("x")))
	if got := h.s.hook(other, &p); got != hookDrop {
		t.Errorf("new flow after reload to deny-all: action %d, want drop", got)
	}
}

func TestRunTearsDownOpenFlows(t *testing.T) {
	pl := newPipeline(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pl.dial(ctx, srv4, portAllow)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(buf); err != nil {
		t.Fatal(err)
	}
	pl.h.stop() // fails the test if Run does not return
	select {
	case <-pl.ups.received: // the upstream side was closed by the teardown
	case <-time.After(10 * time.Second):
		t.Fatal("upstream connection still open after Run returned")
	}
}
