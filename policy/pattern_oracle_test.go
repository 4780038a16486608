package policy

import (
	"bytes"
	"fmt"
)

// pattern is the per-pattern streaming KMP matcher the Inspector used
// before the shared Aho-Corasick automaton replaced it. It stays as the
// oracle the automaton-based Inspector is cross-checked against.
type pattern struct {
	text   string // as configured, for Hit.Pattern
	needle []byte // lower-cased when nocase
	fail   []int32
	nocase bool
	dirs   uint8 // bit per StreamDir
	// skip is the byte to search for with IndexByte while nothing is
	// matched; valid when skipOK (case-sensitive, or a first byte that has
	// no other case).
	skip   byte
	skipOK bool
}

type patternErr struct {
	key string
	msg string
}

func compilePattern(pc PayloadConfig) (pattern, *patternErr) {
	var pt pattern
	switch pc.Dir {
	case "", "to_server":
		pt.dirs = 1 << ToServer
	case "to_client":
		pt.dirs = 1 << ToClient
	case "both":
		pt.dirs = 1<<ToServer | 1<<ToClient
	default:
		return pt, &patternErr{"dir", fmt.Sprintf("unknown dir %q (want to_server, to_client or both)", pc.Dir)}
	}
	if pc.Contains == "" {
		return pt, &patternErr{"contains", "contains must not be empty"}
	}
	pt.text = pc.Contains
	pt.nocase = pc.NoCase
	pt.needle = []byte(pc.Contains)
	if pt.nocase {
		for i, c := range pt.needle {
			pt.needle[i] = lowerASCII[c]
		}
	}
	pt.fail = kmpFailure(pt.needle)
	pt.skip = pt.needle[0]
	pt.skipOK = !pt.nocase || upperASCII[pt.skip] == pt.skip
	return pt, nil
}

// kmpFailure returns, for each prefix length i+1, the length of its longest
// proper prefix that is also a suffix.
func kmpFailure(n []byte) []int32 {
	f := make([]int32, len(n))
	k := int32(0)
	for i := 1; i < len(n); i++ {
		for k > 0 && n[i] != n[k] {
			k = f[k-1]
		}
		if n[i] == n[k] {
			k++
		}
		f[i] = k
	}
	return f
}

// scan advances state over data and reports whether the pattern completed.
func (pt *pattern) scan(state int32, data []byte) (int32, bool) {
	n := pt.needle
	m := int32(len(n))
	s := state
	for i := 0; i < len(data); i++ {
		if s == 0 && pt.skipOK {
			j := bytes.IndexByte(data[i:], pt.skip)
			if j < 0 {
				return 0, false
			}
			i += j
		}
		c := data[i]
		if pt.nocase {
			c = lowerASCII[c]
		}
		for s > 0 && n[s] != c {
			s = pt.fail[s-1]
		}
		if n[s] == c {
			s++
			if s == m {
				return s, true
			}
		}
	}
	return s, false
}

var lowerASCII, upperASCII = func() (lo, up [256]byte) {
	for i := range 256 {
		lo[i], up[i] = byte(i), byte(i)
		if i >= 'A' && i <= 'Z' {
			lo[i] = byte(i) + 'a' - 'A'
		}
		if i >= 'a' && i <= 'z' {
			up[i] = byte(i) - ('a' - 'A')
		}
	}
	return
}()
