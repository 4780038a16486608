package policy

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// TestPrefixSetMatchesNaive compares the merged-range lookup with
// netip.Prefix.Contains over random, overlapping and adjacent prefixes,
// including the /0 and all-ones edges where range arithmetic overflows.
func TestPrefixSetMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	rand4 := func() netip.Addr {
		// Mostly inside 198.18.0.0/24 so prefixes collide; some at the edges.
		switch rng.IntN(10) {
		case 0:
			return netip.AddrFrom4([4]byte{255, 255, 255, byte(rng.IntN(256))})
		case 1:
			return netip.AddrFrom4([4]byte{0, 0, 0, byte(rng.IntN(256))})
		}
		return netip.AddrFrom4([4]byte{198, 18, 0, byte(rng.IntN(256))})
	}
	rand6 := func() netip.Addr {
		b := [16]byte{0x20, 0x01, 0, 2}
		switch rng.IntN(10) {
		case 0:
			b = [16]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
		case 1:
			b[7] = 0xff // crosses the 64-bit halves when a prefix is short
		}
		b[8] = byte(rng.IntN(3))
		b[15] = byte(rng.IntN(256))
		return netip.AddrFrom16(b)
	}
	for round := range 200 {
		var pfx []netip.Prefix
		for range rng.IntN(12) {
			if rng.IntN(2) == 0 {
				pfx = append(pfx, netip.PrefixFrom(rand4(), []int{0, 24, 26, 30, 31, 32}[rng.IntN(6)]).Masked())
			} else {
				pfx = append(pfx, netip.PrefixFrom(rand6(), []int{0, 56, 64, 65, 120, 127, 128}[rng.IntN(7)]).Masked())
			}
		}
		s := newPrefixSet(append([]netip.Prefix(nil), pfx...))
		for range 200 {
			a := rand4()
			if rng.IntN(2) == 0 {
				a = rand6()
			}
			want := false
			for _, p := range pfx {
				want = want || p.Contains(a)
			}
			if got := s.contains(a); got != want {
				t.Fatalf("round %d: contains(%v) = %v, want %v; prefixes %v; v4 %v v6 %v", round, a, got, want, pfx, s.v4, s.v6)
			}
		}
	}
}

func TestPortSetMerge(t *testing.T) {
	s := newPortSet([]portRange{{10, 20}, {21, 30}, {5, 12}, {65535, 65535}, {100, 100}, {0, 0}})
	if len(s.r) != 4 {
		t.Errorf("ranges %v, want 4 after merging", s.r)
	}
	for p, want := range map[uint16]bool{0: true, 1: false, 4: false, 5: true, 20: true, 21: true, 30: true, 31: false, 100: true, 101: false, 65534: false, 65535: true} {
		if s.contains(p) != want {
			t.Errorf("contains(%d) = %v", p, !want)
		}
	}
	if newPortSet(nil).contains(0) {
		t.Error("empty set contains 0")
	}
}
