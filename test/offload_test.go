package test

import (
	"strings"
	"testing"
	"time"
)

// TestTransferOffload is TestTransfer through a gateway whose TUN is
// opened with offloads ([tun] offload = true): the kernel hands tungate
// TCP superpackets to cut into segments, and takes gVisor's superpackets
// back to segment itself. Every byte is checked by SHA-256 both ways over
// both families; durations are logged, not asserted.
func TestTransferOffload(t *testing.T) {
	l := newLab(t)
	cfg := gatewayConfig(t, allowTCPRule("transfer", transferPort))
	cfg = strings.Replace(cfg, "[tun]\n", "[tun]\noffload = true\n", 1)
	if !strings.Contains(cfg, "offload = true") {
		t.Fatalf("config has no [tun] section to extend:\n%s", cfg)
	}
	gw := startGateway(t, l, cfg)
	for _, c := range transferCases {
		t.Run(c.name, func(t *testing.T) {
			d, err := transfer(l, c, gatewayEgress(c.dst))
			if err != nil {
				t.Fatalf("through tungate with offload: %v", err)
			}
			t.Logf("50 MiB %s with offload: %v (%s)", c.name, d.Round(time.Millisecond), rate(d))
		})
	}
	found := false
	for _, line := range gw.Logs() {
		if strings.Contains(line, `"offload":true`) {
			found = true
		}
	}
	if !found {
		t.Errorf("gateway log does not say the TUN was opened with offload")
	}
}
