package policy

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// portSet is a union of port ranges, sorted, disjoint and non-adjacent, for
// a binary search per lookup.
type portSet struct {
	r []portRange
}

type portRange struct{ lo, hi uint16 }

func newPortSet(r []portRange) *portSet {
	if len(r) == 0 {
		return &portSet{}
	}
	slices.SortFunc(r, func(a, b portRange) int { return cmp.Compare(a.lo, b.lo) })
	out := r[:1]
	for _, x := range r[1:] {
		last := &out[len(out)-1]
		if last.hi == 65535 || x.lo <= last.hi+1 {
			last.hi = max(last.hi, x.hi)
			continue
		}
		out = append(out, x)
	}
	return &portSet{r: slices.Clip(out)}
}

func (s *portSet) contains(p uint16) bool {
	r := s.r
	lo, hi := 0, len(r)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if r[m].lo <= p {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo > 0 && p <= r[lo-1].hi
}

// portCond is one of a rule's port keys, built like addrCond.
type portCond []*portSet

func (c portCond) match(p uint16) bool {
	for _, s := range c {
		if s.contains(p) {
			return true
		}
	}
	return false
}

// bounds returns the lowest and highest port in c (65535, 0 when empty).
func (c portCond) bounds() (lo, hi uint16) {
	lo = 65535
	for _, s := range c {
		if len(s.r) > 0 {
			lo = min(lo, s.r[0].lo)
			hi = max(hi, s.r[len(s.r)-1].hi)
		}
	}
	return lo, hi
}

// parsePortElem parses one port element: an integer, a decimal string or an
// "a-b" range. It does not handle "@set".
func parsePortElem(v any) (portRange, error) {
	switch x := v.(type) {
	case int64:
		return portFromInt(x)
	case int:
		return portFromInt(int64(x))
	case string:
		s := strings.TrimSpace(x)
		if a, b, ok := strings.Cut(s, "-"); ok {
			lo, err1 := parsePortNum(a)
			hi, err2 := parsePortNum(b)
			if err1 != nil || err2 != nil {
				return portRange{}, fmt.Errorf("invalid port range %q (want \"a-b\" with 0 <= a <= b <= 65535)", x)
			}
			if lo > hi {
				return portRange{}, fmt.Errorf("port range %q is reversed", x)
			}
			return portRange{lo, hi}, nil
		}
		p, err := parsePortNum(s)
		if err != nil {
			return portRange{}, fmt.Errorf("invalid port %q (want 0-65535, \"a-b\" or \"@set\")", x)
		}
		return portRange{p, p}, nil
	}
	return portRange{}, fmt.Errorf("invalid port of type %s (want an integer, \"a-b\" or \"@set\")", typeName(v))
}

func portFromInt(x int64) (portRange, error) {
	if x < 0 || x > 65535 {
		return portRange{}, fmt.Errorf("port %d out of range 0-65535", x)
	}
	return portRange{uint16(x), uint16(x)}, nil
}

func parsePortNum(s string) (uint16, error) {
	s = strings.TrimSpace(s)
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || s == "" || s[0] == '+' {
		return 0, fmt.Errorf("invalid port %q", s)
	}
	return uint16(n), nil
}

// typeName names a decoded TOML value's type the way a config author
// would recognise it.
func typeName(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case int, int64:
		return "integer"
	case float64:
		return "float"
	case bool:
		return "boolean"
	case []any:
		return "array"
	case map[string]any:
		return "table"
	case nil:
		return "nothing"
	}
	return fmt.Sprintf("%T", v)
}
