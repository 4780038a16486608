package policy

import (
	"cmp"
	"encoding/binary"
	"net/netip"
	"slices"
)

// prefixSet is a union of prefixes stored as sorted, disjoint, non-adjacent
// address ranges per family, so membership is one binary search whatever
// the number of prefixes and however they overlap.
type prefixSet struct {
	v4 []range4
	v6 []range6
	// idx4, for big sets, narrows the IPv4 search to the ranges starting
	// in the address's /16: idx4[h] counts the ranges starting below h<<16.
	// A lookup then touches a few cache lines instead of ~17 levels.
	idx4 []uint32
}

// idx4Min is the number of IPv4 ranges from which a set gets idx4 (256 KiB).
const idx4Min = 4096

func (s *prefixSet) buildIndex4() {
	if len(s.v4) < idx4Min {
		return
	}
	s.idx4 = make([]uint32, 1<<16+1)
	i := 0
	for h := range 1<<16 + 1 {
		for i < len(s.v4) && s.v4[i].lo>>16 < uint32(h) {
			i++
		}
		s.idx4[h] = uint32(i)
	}
}

type range4 struct{ lo, hi uint32 }

type u128 struct{ hi, lo uint64 }

type range6 struct{ lo, hi u128 }

func (a u128) less(b u128) bool { return a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo) }

func (a u128) inc() (u128, bool) {
	lo := a.lo + 1
	hi := a.hi
	if lo == 0 {
		hi++
		if hi == 0 {
			return u128{}, false
		}
	}
	return u128{hi, lo}, true
}

func cmp128(a, b u128) int {
	if a == b {
		return 0
	}
	if a.less(b) {
		return -1
	}
	return 1
}

func addr4(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

func addr6(a netip.Addr) u128 {
	b := a.As16()
	return u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

// newPrefixSet builds the set from prefixes of either family. IPv4-mapped
// IPv6 prefixes are not unmapped: callers unmap them when parsing.
func newPrefixSet(pfx []netip.Prefix) *prefixSet {
	s := &prefixSet{}
	for _, p := range pfx {
		p = p.Masked()
		if p.Addr().Is4() {
			lo := addr4(p.Addr())
			hi := lo
			if bits := p.Bits(); bits < 32 {
				hi = lo | (^uint32(0) >> bits)
			}
			s.v4 = append(s.v4, range4{lo, hi})
			continue
		}
		lo := addr6(p.Addr())
		hi := lo
		switch bits := p.Bits(); {
		case bits == 0:
			hi = u128{^uint64(0), ^uint64(0)}
		case bits < 64:
			hi = u128{lo.hi | (^uint64(0) >> bits), ^uint64(0)}
		case bits < 128:
			hi = u128{lo.hi, lo.lo | (^uint64(0) >> (bits - 64))}
		}
		s.v6 = append(s.v6, range6{lo, hi})
	}
	s.v4 = merge4(s.v4)
	s.v6 = merge6(s.v6)
	s.buildIndex4()
	return s
}

func merge4(r []range4) []range4 {
	if len(r) == 0 {
		return nil
	}
	slices.SortFunc(r, func(a, b range4) int { return cmp.Compare(a.lo, b.lo) })
	out := r[:1]
	for _, x := range r[1:] {
		last := &out[len(out)-1]
		if last.hi == ^uint32(0) || x.lo <= last.hi+1 {
			last.hi = max(last.hi, x.hi)
			continue
		}
		out = append(out, x)
	}
	return slices.Clip(out)
}

func merge6(r []range6) []range6 {
	if len(r) == 0 {
		return nil
	}
	slices.SortFunc(r, func(a, b range6) int { return cmp128(a.lo, b.lo) })
	out := r[:1]
	for _, x := range r[1:] {
		last := &out[len(out)-1]
		next, ok := last.hi.inc()
		if !ok || !next.less(x.lo) {
			if last.hi.less(x.hi) {
				last.hi = x.hi
			}
			continue
		}
		out = append(out, x)
	}
	return slices.Clip(out)
}

// contains reports whether a (already unmapped) is in the set.
func (s *prefixSet) contains(a netip.Addr) bool {
	if a.Is4() {
		x := addr4(a)
		r := s.v4
		// Find the last range whose lo <= x; with idx4 only among those
		// starting in x's /16 and the one before them, which may reach in.
		start, end := 0, len(r)
		if s.idx4 != nil {
			h := x >> 16
			start, end = int(s.idx4[h]), int(s.idx4[h+1])
			if start > 0 {
				start--
			}
		}
		lo, hi := start, end
		for lo < hi {
			m := int(uint(lo+hi) >> 1)
			if r[m].lo <= x {
				lo = m + 1
			} else {
				hi = m
			}
		}
		return lo > start && x <= r[lo-1].hi
	}
	if !a.Is6() {
		return false
	}
	x := addr6(a)
	r := s.v6
	lo, hi := 0, len(r)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if !x.less(r[m].lo) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo > 0 && !r[lo-1].hi.less(x)
}

// addrCond is one of a rule's address keys: it matches when any of its
// sets contains the address. Inline elements form one set; each @set
// reference shares the compiled named set, so a large set referenced by
// many rules is stored once. nil means the key is absent.
type addrCond []addrSet

// addrSet is a static prefix set or a dynamic set (exactly one is set).
type addrSet struct {
	pfx *prefixSet
	dyn *dynSet
}

// addrMemo remembers one static set's answer for one address during a
// walk over the rules: rules tend to name the same sets (@lan, a big block
// list), and a lookup in a 100k-prefix set costs more than the rest of a
// rule, so a flow checked against many rules looks each set up once.
type addrMemo struct {
	set *prefixSet
	hit bool
}

// matchMemo reports whether any of c's sets contains a, with the static
// sets' answers taken from and kept in m; m must only ever see the same
// address a.
func (c addrCond) matchMemo(a netip.Addr, clk *clock, m *addrMemo) bool {
	for i := range c {
		s := &c[i]
		if s.pfx == nil {
			if s.dyn.contains(a, clk.get()) {
				return true
			}
			continue
		}
		if s.pfx != m.set {
			m.set, m.hit = s.pfx, s.pfx.contains(a)
		}
		if m.hit {
			return true
		}
	}
	return false
}

// strings lists the set as CIDRs (IPv4 ranges are split into prefixes;
// an IPv6 range that is no single prefix is written "lo-hi").
func (s *prefixSet) strings() []string {
	var out []string
	for _, r := range s.v4 {
		lo := uint64(r.lo)
		for lo <= uint64(r.hi) {
			bits := 32
			for bits > 0 {
				size := uint64(1) << (33 - bits)
				if lo%size != 0 || lo+size-1 > uint64(r.hi) {
					break
				}
				bits--
			}
			var b [4]byte
			binary.BigEndian.PutUint32(b[:], uint32(lo))
			out = append(out, netip.PrefixFrom(netip.AddrFrom4(b), bits).String())
			lo += uint64(1) << (32 - bits)
		}
	}
	for _, r := range s.v6 {
		out = append(out, range6String(r))
	}
	return out
}

func addrFrom128(x u128) netip.Addr {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], x.hi)
	binary.BigEndian.PutUint64(b[8:], x.lo)
	return netip.AddrFrom16(b)
}

func range6String(r range6) string {
	lo := addrFrom128(r.lo)
	for bits := 0; bits <= 128; bits++ {
		p := netip.PrefixFrom(lo, bits)
		if p.Masked().Addr() != lo {
			continue
		}
		if ps := newPrefixSet([]netip.Prefix{p}); ps.v6[0].hi == r.hi {
			return p.String()
		}
	}
	return lo.String() + "-" + addrFrom128(r.hi).String()
}
