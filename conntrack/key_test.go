package conntrack

import (
	"net/netip"
	"testing"
	"time"
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

func TestLookup(t *testing.T) {
	tab, clk := newTestTable(t, nil)
	k := tcpKey("198.18.0.1", "198.18.1.1", 40000, 80)
	c := openConv(t, tab, k)
	syn := c.pkt(DirOriginal, fSYN, 0)
	for _, q := range []Key{k, k.Reply()} {
		fi, ok := tab.Lookup(q)
		if !ok || fi.Orig != k || fi.TCPState != "SYN_SENT" {
			t.Fatalf("Lookup(%+v) = %+v, %v; want the SYN_SENT flow", q, fi, ok)
		}
		// The SYN counts one in its sender's sequence space.
		if got, want := fi.Window[DirOriginal].End, syn.Seq+1; got != want {
			t.Errorf("original sender's end %d; want the SYN's seq+1 = %d", got, want)
		}
	}
	clk.Advance(3 * time.Minute)
	if _, ok := tab.Lookup(k); ok {
		t.Error("an expired flow was found")
	}
	if _, ok := tab.Lookup(udpKey("198.18.0.1", "198.18.1.1", 1, 2)); ok {
		t.Error("a flow never tracked was found")
	}
}
