package stack

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tungate/tungate/stack/packet"
	"github.com/tungate/tungate/stack/verdict"

	"github.com/tungate/tungate/policy"
)

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
	var p packet.Parsed
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
	var p packet.Parsed
	if got := h.s.hook(pkt, &p); got != verdict.Pass {
		t.Errorf("established flow after reload: action %d, want inject", got)
	}
	other := ipPkt(cli4, srv4, packet.ProtoUDP, udpHdr(40001, portUDPAllow, []byte("x")))
	if got := h.s.hook(other, &p); got != verdict.Drop {
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
