package bench

import (
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/tungate/tungate/policy"

	"github.com/tungate/tungate/internal/config"
)

func TestArmPayloadLoads(t *testing.T) {
	cfg, err := ArmPayload(Generate(PolicyRules).TOML(), PayloadPatterns)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(cfg, "contains = "); n != PayloadPatterns {
		t.Fatalf("%d patterns, want %d", n, PayloadPatterns)
	}
	if strings.Index(cfg, "bench-payload-armed") > strings.Index(cfg, "allow-bench-tcp") {
		t.Fatal("payload rule after the rule that allows the benchmark flows: it would never be armed")
	}
	f, err := config.Parse("bench.toml", []byte(cfg))
	if err != nil {
		t.Fatalf("armed config does not load: %v", err)
	}
	// A benchmark bulk flow is allowed by the next rule, with the payload
	// rule armed on it, and the inspector keeps scanning past 1 MiB of
	// random data without a hit.
	pol := f.Compiled
	flow := policy.Flow{Proto: 6, Src: netip.MustParseAddr("198.18.1.2"), Dst: netip.MustParseAddr("198.18.2.2"), SrcPort: 40000, DstPort: PortIperf}
	v := pol.Decide(&flow)
	if v.Action != policy.ActionAllow {
		t.Fatalf("bench flow not allowed: %+v", v)
	}
	ins := pol.NewInspector(&flow, v)
	if ins == nil {
		t.Fatal("no inspector armed on the bench flow")
	}
	chunk := make([]byte, 64<<10)
	r := rand.New(rand.NewPCG(1, 2))
	for range 32 {
		for i := range chunk {
			chunk[i] = byte(r.Uint32())
		}
		for _, dir := range []policy.StreamDir{policy.ToServer, policy.ToClient} {
			if h, hit := ins.Feed(dir, chunk); hit {
				t.Fatalf("payload rule hit random data: %+v", h)
			}
		}
	}
	if ins.Done() {
		t.Fatal("inspector done after 2 MiB: stream_depth = 0 should keep it armed")
	}
}

func TestArmPayloadRefusesWithoutAnchor(t *testing.T) {
	if _, err := ArmPayload("[tun]\nname = \"x\"\n", 3); err == nil {
		t.Fatal("no error for a config without the allow-bench-tcp rule")
	}
}
