package ahocorasick

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the committed fuzz seed corpus")

// decodeCase reads a fuzz input as patterns and a haystack: byte 0 gives
// the pattern count (1..16); each pattern is a length byte (low 3 bits,
// 0..7; bit 3 set means nocase) followed by that many bytes; the rest is
// the haystack.
func decodeCase(b []byte) (patterns [][]byte, nocase []bool, data []byte) {
	if len(b) == 0 {
		return nil, nil, nil
	}
	n := 1 + int(b[0]%16)
	b = b[1:]
	for range n {
		if len(b) == 0 {
			break
		}
		l := int(b[0] & 7)
		nc := b[0]&8 != 0
		b = b[1:]
		l = min(l, len(b))
		patterns = append(patterns, b[:l])
		nocase = append(nocase, nc)
		b = b[l:]
	}
	return patterns, nocase, b
}

// FuzzMatcher cross-checks Scan and Find, on the whole haystack and on a
// split stream, against the naive oracle.
func FuzzMatcher(f *testing.F) {
	for _, s := range matcherSeeds() {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, in, cuts []byte) {
		patterns, nocase, data := decodeCase(in)
		m, err := Build(patterns, nocase)
		if err != nil {
			t.Fatal(err)
		}
		var pos []int
		off := 0
		for _, c := range cuts {
			off += int(c)
			if off >= len(data) {
				break
			}
			pos = append(pos, off)
		}
		want := naive(patterns, nocase, data)
		if got := scanSplit(m, data, pos); !slices.Equal(got, want) {
			t.Fatalf("scan %v want %v", got, want)
		}
		if got := findAll(m, data, pos); !slices.Equal(got, firstPerEnd(want)) {
			t.Fatalf("find %v want %v", got, firstPerEnd(want))
		}
	})
}

func matcherSeeds() map[string][][]byte {
	enc := func(data string, pats ...string) []byte {
		b := []byte{byte(len(pats) - 1)}
		for _, p := range pats {
			nc := byte(0)
			if strings.HasPrefix(p, "i:") {
				p, nc = p[2:], 8
			}
			b = append(append(b, byte(len(p))|nc), p...)
		}
		return append(b, data...)
	}
	return map[string][][]byte{
		"overlap":  {enc("ushers and his hers", "he", "she", "his", "hers"), {3, 4}},
		"nocase":   {enc("GET / HTTP/1.1\r\nHOST: evil.example\r\n", "i:host:", "Host:", "i:EVIL", "evil"), {1, 1, 1, 30}},
		"binary":   {enc("\x00\xff\x16\x03\x01\x00\xffabc", "\x16\x03", "\xff", "\x00\xff\x16"), nil},
		"repeats":  {enc("aaaaaaaaaaaaaaaa", "a", "aa", "aaa", "i:AAAA"), {2, 2, 2}},
		"no-match": {enc("zzzz", "abc"), {1}},
	}
}

// TestMatcherSeeds checks that testdata/fuzz/FuzzMatcher holds exactly the
// seeds matcherSeeds encodes, so the committed corpus cannot drift from
// the cases it is meant to be; -update rewrites it.
func TestMatcherSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzMatcher")
	if *update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, args := range matcherSeeds() {
		s := "go test fuzz v1\n"
		for _, a := range args {
			s += "[]byte(" + strconv.Quote(string(a)) + ")\n"
		}
		path := filepath.Join(dir, name)
		if *update {
			if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%v (rerun with -update to write it)", err)
			continue
		}
		if string(got) != s {
			t.Errorf("%s: got\n%s\nwant\n%s(rerun with -update to rewrite it)", path, got, s)
		}
	}
}
