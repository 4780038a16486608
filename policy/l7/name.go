package l7

import "strings"

// NormalizeName lowercases the ASCII letters of name in place and strips
// one trailing dot (the DNS root), returning the shortened slice. Other
// bytes are left alone: a name that is not plain ASCII simply will not
// equal an ASCII rule.
func NormalizeName(name []byte) []byte {
	for i, c := range name {
		if 'A' <= c && c <= 'Z' {
			name[i] = c + 'a' - 'A'
		}
	}
	if n := len(name); n > 0 && name[n-1] == '.' {
		name = name[:n-1]
	}
	return name
}

// MatchSuffix reports whether name is suffix or lies under it on a label
// boundary: "a.b.example" matches "example" and "b.example" but not
// "ample". Both must already be normalized (see NormalizeName); a leading
// dot on suffix is ignored. An empty suffix matches nothing, so that a
// missing value in a rule cannot match every name.
func MatchSuffix(name, suffix string) bool {
	suffix = strings.TrimPrefix(suffix, ".")
	if suffix == "" || !strings.HasSuffix(name, suffix) {
		return false
	}
	return len(name) == len(suffix) || name[len(name)-len(suffix)-1] == '.'
}

// MatchSuffixBytes is MatchSuffix for a name held in a byte slice, such as
// TLSState.SNI, without converting it to a string.
func MatchSuffixBytes(name []byte, suffix string) bool {
	suffix = strings.TrimPrefix(suffix, ".")
	if suffix == "" || len(name) < len(suffix) {
		return false
	}
	tail := name[len(name)-len(suffix):]
	if string(tail) != suffix { // compared without allocating
		return false
	}
	return len(name) == len(suffix) || name[len(name)-len(suffix)-1] == '.'
}
