package policy

import (
	"github.com/tungate/tungate/internal/units"
	"net/netip"
	"testing"
)

func mustCompile(t testing.TB, cfg Config) *Policy {
	t.Helper()
	p, err := Compile(cfg)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return p
}

var protoNums = map[string]uint8{"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "gre": 47}

// flow builds a Flow from "proto src:port dst:port"-style parts; ports are
// ignored for protocols without them.
func flow(proto, src, dst string) *Flow {
	f := &Flow{Proto: protoNums[proto]}
	if ap, err := netip.ParseAddrPort(src); err == nil {
		f.Src, f.SrcPort = ap.Addr(), ap.Port()
	} else {
		f.Src = netip.MustParseAddr(src)
	}
	if ap, err := netip.ParseAddrPort(dst); err == nil {
		f.Dst, f.DstPort = ap.Addr(), ap.Port()
	} else {
		f.Dst = netip.MustParseAddr(dst)
	}
	return f
}

func unitsSize(n int64) units.Size { return units.Size(n) }
