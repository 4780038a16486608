package policy

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// A set big enough for the /16 index must answer like a plain binary
// search, including ranges that start in one /16 and reach into the next.
func TestPrefixSetIndexMatchesSearch(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var pfx []netip.Prefix
	for range 6000 {
		a := netip.AddrFrom4([4]byte{198, byte(16 + rng.IntN(2)), byte(rng.IntN(256)), byte(rng.IntN(256))})
		pfx = append(pfx, netip.PrefixFrom(a, []int{32, 32, 30, 28, 31}[rng.IntN(5)]).Masked())
	}
	pfx = append(pfx, netip.MustParsePrefix("0.0.0.0/32"), netip.MustParsePrefix("255.255.255.255/32"), netip.MustParsePrefix("198.20.0.0/15"), netip.MustParsePrefix("198.15.255.128/25"))
	s := newPrefixSet(append([]netip.Prefix(nil), pfx...))
	if s.idx4 == nil {
		t.Fatalf("%d ranges did not get an index", len(s.v4))
	}
	plain := &prefixSet{v4: s.v4}
	probe := func(a netip.Addr) {
		if got, want := s.contains(a), plain.contains(a); got != want {
			t.Fatalf("contains(%v) = %v, plain search %v", a, got, want)
		}
	}
	for _, r := range s.v4 {
		for _, x := range []uint32{r.lo, r.hi, r.lo - 1, r.hi + 1} {
			probe(netip.AddrFrom4([4]byte{byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x)}))
		}
	}
	for range 100000 {
		probe(netip.AddrFrom4([4]byte{198, byte(14 + rng.IntN(8)), byte(rng.IntN(256)), byte(rng.IntN(256))}))
	}
}
