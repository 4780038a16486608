package conntrack

import (
	"net/netip"
	"testing"
)

func TestSourceCount(t *testing.T) {
	tb := New(Config{}, Options{})
	v4 := netip.MustParseAddr("198.18.1.2")
	v6a := netip.MustParseAddr("2001:2:0:1::2")
	v6b := netip.MustParseAddr("2001:2:0:1::99") // same /64 as v6a
	open := func(src netip.Addr, sport uint16) {
		t.Helper()
		var k Key
		k.Proto, k.SrcPort, k.DstPort = 17, sport, 53
		if src.Is4() {
			a := src.As4()
			copy(k.Src[:], a[:])
			k.Dst[0], k.Dst[1], k.Dst[2], k.Dst[3] = 198, 18, 2, 2
			k.Family = 4
		} else {
			k.Src = src.As16()
			k.Dst = netip.MustParseAddr("2001:2:0:2::2").As16()
			k.Family = 6
		}
		p := Packet{Key: k, Len: 40}
		if err := tb.Commit(&p, Verdict{Action: 1}); err != nil {
			t.Fatalf("commit %v:%d: %v", src, sport, err)
		}
	}
	for i := range 3 {
		open(v4, uint16(1000+i))
	}
	open(v6a, 1000)
	open(v6b, 1001)

	for _, c := range []struct {
		addr netip.Addr
		want int
	}{
		{v4, 3},
		{netip.AddrFrom16(v4.As16()), 3}, // v4-mapped form counts as v4
		{v6a, 2},                         // both /64 neighbours
		{v6b, 2},
		{netip.MustParseAddr("198.18.1.3"), 0},
	} {
		if got := tb.SourceCount(c.addr); got != c.want {
			t.Errorf("SourceCount(%v) = %d, want %d", c.addr, got, c.want)
		}
	}
}
