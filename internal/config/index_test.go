package config

import (
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// posOf finds the 1-based line and column of the n-th (from 0) occurrence
// of marker in src, so expectations are derived from the text, not typed.
func posOf(t *testing.T, src, marker string, n int) Pos {
	t.Helper()
	off := 0
	for k := 0; ; k++ {
		i := strings.Index(src[off:], marker)
		if i < 0 {
			t.Fatalf("marker %q #%d not in text", marker, n)
		}
		if k == n {
			off += i
			break
		}
		off += i + len(marker)
	}
	line := strings.Count(src[:off], "\n") + 1
	col := off - (strings.LastIndex(src[:off], "\n") + 1) + 1
	return Pos{line, col}
}

const tricky = `# comment with = and [brackets] and "quotes"
title = "a # not a comment [x] = y" # real comment
lit = 'C:\path # still string'
ml = """
multi = line [not a table]
# not a comment
"""
mll = '''x = [1, 2
]'''
quoted."dotted key".x = 1
"quoted key" = 2

[tun]
name = "tungate0"   # trailing
addresses = [
  "198.18.0.1/24", # first
  # interleaved comment with ] and ,
  "2001:2::1/64",
]

[[rule]]
name = "one"
dst_port = [80, "8000-8999"]

[[rule]]
name = "two"
dst_port = [ 443 ,
   "bad" ]
tls.sni = { suffix = ["blocked.example"], exact = "x" }
payload = [{ contains = "${jndi:" }, { contains = "]}#=", nocase = true }]

[[rule.extra]]
k = 11

[[rule]]
name = "three"
when = 1979-05-27 07:32:00Z

[[rule.extra]]
k = 22

[sets.web]
elements = [80, 443]
`

func TestIndexPositions(t *testing.T) {
	var v map[string]any
	if _, err := toml.Decode(tricky, &v); err != nil {
		t.Fatalf("test text is not valid TOML: %v", err)
	}
	x := buildIndex([]byte(tricky))
	cases := []struct {
		path   []string
		marker string
		nth    int
		key    bool // expect key position rather than value position
	}{
		{[]string{"title"}, `"a # not`, 0, false},
		{[]string{"lit"}, `'C:`, 0, false},
		{[]string{"ml"}, `"""`, 0, false},
		{[]string{"mll"}, `'''x`, 0, false},
		{[]string{"quoted", "dotted key", "x"}, `quoted.`, 0, true},
		{[]string{"quoted"}, `quoted.`, 0, true},
		{[]string{"quoted key"}, `"quoted key"`, 0, true},
		{[]string{"tun", "name"}, `"tungate0"`, 0, false},
		{[]string{"tun", "addresses", "0"}, `"198.18.0.1/24"`, 0, false},
		{[]string{"tun", "addresses", "1"}, `"2001:2::1/64"`, 0, false},
		{[]string{"rule", "0", "name"}, `"one"`, 0, false},
		{[]string{"rule", "0", "dst_port", "1"}, `"8000-8999"`, 0, false},
		{[]string{"rule", "1", "dst_port"}, `[ 443`, 0, false},
		{[]string{"rule", "1", "dst_port", "0"}, `443 ,`, 0, false},
		{[]string{"rule", "1", "dst_port", "1"}, `"bad"`, 0, false},
		{[]string{"rule", "1", "dst_port"}, `dst_port`, 1, true},
		{[]string{"rule", "1", "tls", "sni", "suffix", "0"}, `"blocked.example"`, 0, false},
		{[]string{"rule", "1", "tls", "sni", "exact"}, `"x" }`, 0, false},
		{[]string{"rule", "1", "tls"}, `tls.sni`, 0, true},
		{[]string{"rule", "1", "payload", "0", "contains"}, `"${jndi:"`, 0, false},
		{[]string{"rule", "1", "payload", "1", "nocase"}, `true }]`, 0, false},
		{[]string{"rule", "1", "payload", "1", "contains"}, `contains = "]}`, 0, true},
		{[]string{"rule", "1", "extra", "0", "k"}, `11`, 0, false},
		{[]string{"rule", "2", "name"}, `"three"`, 0, false},
		{[]string{"rule", "2", "when"}, `1979`, 0, false},
		{[]string{"rule", "2", "extra", "0", "k"}, `22`, 0, false},
		{[]string{"sets", "web", "elements", "1"}, `443]`, 0, false},
	}
	for _, c := range cases {
		want := posOf(t, tricky, c.marker, c.nth)
		var got Pos
		var ok bool
		if c.key {
			got, ok = x.keys[pathKey(c.path)]
		} else {
			got, ok = x.vals[pathKey(c.path)]
		}
		if !ok || got != want {
			t.Errorf("%q (key=%v): got %v (found %v), want %v", c.path, c.key, got, ok, want)
		}
	}
	headers := []struct {
		path []string
		nth  int
	}{
		{[]string{"rule", "0"}, 0},
		{[]string{"rule", "1"}, 1},
		{[]string{"rule", "2"}, 2},
		{[]string{"rule"}, 0},
	}
	for _, h := range headers {
		want := posOf(t, tricky, "[[rule]]", h.nth)
		if got := x.headers[pathKey(h.path)]; got != want {
			t.Errorf("header %q: got %v, want %v", h.path, got, want)
		}
	}
	if got, want := x.headers[pathKey([]string{"rule", "2", "extra", "0"})], posOf(t, tricky, "[[rule.extra]]", 1); got != want {
		t.Errorf("header rule.2.extra.0: got %v, want %v", got, want)
	}
	// Paths the file does not have fall back to the enclosing table.
	if got, want := x.lookup([]string{"rule", "1", "missing"}), posOf(t, tricky, "[[rule]]", 1); got != want {
		t.Errorf("fallback: got %v, want %v", got, want)
	}
	if got := x.lookup([]string{"nowhere", "at", "all"}); got != (Pos{1, 1}) {
		t.Errorf("fallback to start: got %v", got)
	}
}

// checkInside fails when any recorded position is outside src.
func checkInside(t *testing.T, src []byte, x *index) {
	t.Helper()
	lines := strings.Split(string(src), "\n")
	for _, m := range []map[string]Pos{x.keys, x.vals, x.headers} {
		for k, p := range m {
			if p.Line < 1 || p.Line > len(lines) || p.Col < 1 || p.Col > len(lines[p.Line-1])+1 {
				t.Fatalf("position %v of %q outside input (%d lines)", p, k, len(lines))
			}
		}
	}
}

func FuzzIndex(f *testing.F) {
	f.Add([]byte(tricky))
	f.Add([]byte("a = [[[[{x = [1,{y='''"))
	f.Add([]byte("[[a]]\n[[a.b]]\n[a.b.c]\nx=\"\\\"\"\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		checkInside(t, src, buildIndex(src))
	})
}

func TestIndexDeepNesting(t *testing.T) {
	src := []byte("a = " + strings.Repeat("[", 100000) + "\nb = 1\n")
	x := buildIndex(src)
	checkInside(t, src, x)
}
