package policy

import (
	"fmt"

	"github.com/tungate/tungate/internal/cfgerr"
)

var ctStateNames = [numCtStates]string{"new", "established", "related", "invalid"}

func (s CtState) String() string {
	if int(s) < len(ctStateNames) {
		return ctStateNames[s]
	}
	return fmt.Sprintf("ct-state(%d)", s)
}

// ParseCtState maps a ct_state word to its state.
func ParseCtState(s string) (CtState, bool) {
	for i, n := range ctStateNames {
		if n == s {
			return CtState(i), true
		}
	}
	return 0, false
}

func compileCtState(l List, key []string, errs *cfgerr.List) uint8 {
	if len(l) == 0 {
		return ctDefault
	}
	var m uint8
	for j, e := range l {
		s, _ := e.(string)
		st, ok := ParseCtState(s)
		if !ok {
			errs.Addf(fmt.Sprintf("unknown ct_state %v (want new, established, related or invalid)", quoteAny(e)), key, "ct_state", j)
			continue
		}
		m |= 1 << st
	}
	return m
}

func quoteAny(v any) string {
	if s, ok := v.(string); ok {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("of type %s", typeName(v))
}

// icmpTypes is a bitmap of ICMP types per family ([0] ICMP, [1] ICMPv6).
type icmpTypes [2][4]uint64

func (t *icmpTypes) has(v6 bool, typ uint8) bool {
	f := 0
	if v6 {
		f = 1
	}
	return t[f][typ>>6]&(1<<(typ&63)) != 0
}

func (t *icmpTypes) set(f int, typ uint8) { t[f][typ>>6] |= 1 << (typ & 63) }

// icmpNames maps type names to their numbers in ICMP and ICMPv6 (-1: the
// family has no such type).
var icmpNames = map[string][2]int{
	"echo-reply":              {0, 129},
	"destination-unreachable": {3, 1},
	"source-quench":           {4, -1},
	"redirect":                {5, 137},
	"echo-request":            {8, 128},
	"router-advertisement":    {9, 134},
	"router-solicitation":     {10, 133},
	"time-exceeded":           {11, 3},
	"parameter-problem":       {12, 4},
	"timestamp-request":       {13, -1},
	"timestamp-reply":         {14, -1},
	"packet-too-big":          {-1, 2},
	"neighbor-solicitation":   {-1, 135},
	"neighbor-advertisement":  {-1, 136},
}

// icmpTypeName names type typ of the family, for Explain.
func icmpTypeName(v6 bool, typ uint8) string {
	f := 0
	if v6 {
		f = 1
	}
	for n, v := range icmpNames {
		if v[f] == int(typ) {
			return n
		}
	}
	return fmt.Sprint(typ)
}

func compileICMPTypes(l List, protos uint8, protoOK bool, key []string, errs *cfgerr.List) *icmpTypes {
	if len(l) == 0 {
		return nil
	}
	if protoOK && (protos == protoAll || protos&^protoBitsICMP != 0) {
		errs.Addf(`icmp_type needs proto limited to "icmp" and/or "icmpv6"`, key, "icmp_type")
	}
	t := new(icmpTypes)
	for j, e := range l {
		switch v := e.(type) {
		case int64, int:
			n := toInt64(v)
			if n < 0 || n > 255 {
				errs.Addf(fmt.Sprintf("icmp_type %d out of range 0-255", n), key, "icmp_type", j)
				continue
			}
			t.set(0, uint8(n))
			t.set(1, uint8(n))
		case string:
			nums, ok := icmpNames[v]
			if !ok {
				errs.Addf(fmt.Sprintf("unknown icmp_type %q (want a number or a name such as echo-request)", v), key, "icmp_type", j)
				continue
			}
			for f, n := range nums {
				if n >= 0 {
					t.set(f, uint8(n))
				}
			}
		default:
			errs.Addf(fmt.Sprintf("invalid icmp_type of type %s (want a number or a name)", typeName(e)), key, "icmp_type", j)
		}
	}
	return t
}

func toInt64(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case int:
		return int64(x)
	}
	return 0
}
