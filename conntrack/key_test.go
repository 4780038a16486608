package conntrack

import (
	"net/netip"
	"testing"
)

func TestKeyAddrs(t *testing.T) {
	for _, tc := range []struct{ src, dst string }{
		{"198.18.0.1:40000", "198.18.1.1:443"},
		{"[2001:2::1]:40000", "[2001:2:0:1::1]:53"},
	} {
		src, dst := netip.MustParseAddrPort(tc.src), netip.MustParseAddrPort(tc.dst)
		k := KeyFrom(protoTCP, src, dst)
		if got := k.SrcAddrPort(); got != src {
			t.Errorf("SrcAddrPort: got %v; want %v", got, src)
		}
		if got := k.DstAddrPort(); got != dst {
			t.Errorf("DstAddrPort: got %v; want %v", got, dst)
		}
		r := k.Reply()
		if got := r.SrcAddrPort(); got != dst {
			t.Errorf("Reply().SrcAddrPort: got %v; want %v", got, dst)
		}
		if n := testing.AllocsPerRun(100, func() { _ = k.SrcAddr(); _ = k.DstAddrPort() }); n != 0 {
			t.Errorf("address conversion allocates %v times", n)
		}
	}
}
