package config

import (
	"strconv"
	"strings"
)

// Pos is a place in the configuration file: 1-based line and 1-based byte
// column, the same convention toml.ParseError uses, so syntax errors and our
// own errors point the same way.
type Pos struct {
	Line, Col int
}

// index maps key paths to where they are written. The toml library gives
// values but no positions for them (and none per [[rule]] element), so the
// loader scans the text once more for positions only. It is built from text
// the toml parser accepted; on other text it must merely not fail.
//
// Paths are the ones cfgerr uses: array-of-tables and array elements are
// decimal indices counted from 0, so {"rule","3","dst_port","1"} is the
// second element of dst_port in the fourth [[rule]].
type index struct {
	keys    map[string]Pos // where the key is written
	vals    map[string]Pos // where its value starts
	headers map[string]Pos // [table] / [[table]] headers, also implied parents
}

// maxDepth bounds nesting of arrays and inline tables so hostile input
// cannot recurse without limit; real configs nest two or three deep.
const maxDepth = 256

func pathKey(path []string) string { return strings.Join(path, "\x00") }

// lookup returns the position for path: its value, else its key, else its
// table header; failing those, the same for the nearest enclosing path, and
// finally the start of the file.
func (x *index) lookup(path []string) Pos {
	for n := len(path); n > 0; n-- {
		k := pathKey(path[:n])
		if p, ok := x.vals[k]; ok {
			return p
		}
		if p, ok := x.keys[k]; ok {
			return p
		}
		if p, ok := x.headers[k]; ok {
			return p
		}
	}
	return Pos{1, 1}
}

// keyPos is like lookup but prefers the key over its value: unknown keys
// are reported where the key is written.
func (x *index) keyPos(path []string) Pos {
	k := pathKey(path)
	if p, ok := x.keys[k]; ok {
		return p
	}
	if p, ok := x.headers[k]; ok {
		return p
	}
	return x.lookup(path)
}

// buildIndex scans TOML text for the positions of keys, values, array
// elements and table headers.
func buildIndex(src []byte) *index {
	s := &scanner{
		src:    src,
		line:   1,
		col:    1,
		arrays: map[string]int{},
		x: &index{
			keys:    map[string]Pos{},
			vals:    map[string]Pos{},
			headers: map[string]Pos{},
		},
	}
	s.document()
	return s.x
}

type scanner struct {
	src       []byte
	i         int // next byte
	line, col int // position of src[i]
	depth     int
	table     []string       // current table, resolved with indices
	arrays    map[string]int // resolved [[path]] -> tables seen so far
	x         *index
}

func (s *scanner) eof() bool { return s.i >= len(s.src) }

func (s *scanner) peek() byte {
	if s.i < len(s.src) {
		return s.src[s.i]
	}
	return 0
}

func (s *scanner) peekAt(n int) byte {
	if s.i+n < len(s.src) {
		return s.src[s.i+n]
	}
	return 0
}

func (s *scanner) pos() Pos { return Pos{s.line, s.col} }

func (s *scanner) advance() {
	if s.i >= len(s.src) {
		return
	}
	if s.src[s.i] == '\n' {
		s.line++
		s.col = 1
	} else {
		s.col++
	}
	s.i++
}

func (s *scanner) skipBlank() {
	for c := s.peek(); c == ' ' || c == '\t'; c = s.peek() {
		s.advance()
	}
}

// skipSpace skips blanks, newlines and comments: the filler allowed
// between array elements and between top-level statements.
func (s *scanner) skipSpace() {
	for !s.eof() {
		switch s.peek() {
		case ' ', '\t', '\r', '\n':
			s.advance()
		case '#':
			s.skipLine()
		default:
			return
		}
	}
}

// skipLine moves to the next newline, not past it.
func (s *scanner) skipLine() {
	for !s.eof() && s.peek() != '\n' {
		s.advance()
	}
}

func (s *scanner) document() {
	for {
		s.skipSpace()
		if s.eof() {
			return
		}
		if s.peek() == '[' {
			s.header()
		} else {
			s.keyValue(s.table)
		}
		// Whatever is left of the line is a comment (or, in text toml
		// rejected, garbage); always consume at least one byte.
		s.skipLine()
		s.advance()
	}
}

func (s *scanner) header() {
	start := s.pos()
	s.advance()
	double := s.peek() == '['
	if double {
		s.advance()
	}
	s.skipBlank()
	keys, _ := s.key()
	if len(keys) == 0 {
		return
	}
	var resolved []string
	for j, k := range keys {
		resolved = append(resolved, k)
		rk := pathKey(resolved)
		last := j == len(keys)-1
		switch n, isArray := s.arrays[rk]; {
		case last && double:
			s.arrays[rk] = n + 1
			if _, ok := s.x.headers[rk]; !ok {
				s.x.headers[rk] = start
			}
			resolved = append(resolved, strconv.Itoa(n))
		case isArray && n > 0:
			resolved = append(resolved, strconv.Itoa(n-1))
		}
		hk := pathKey(resolved)
		if _, ok := s.x.headers[hk]; !ok || last {
			s.x.headers[hk] = start
		}
	}
	s.table = resolved
}

// keyValue parses `key = value` relative to base.
func (s *scanner) keyValue(base []string) {
	keys, kpos := s.key()
	if len(keys) == 0 {
		return
	}
	s.skipBlank()
	if s.peek() != '=' {
		return
	}
	s.advance()
	s.skipBlank()
	path := make([]string, 0, len(base)+len(keys))
	path = append(path, base...)
	for _, k := range keys {
		path = append(path, k)
		pk := pathKey(path)
		if _, ok := s.x.keys[pk]; !ok {
			s.x.keys[pk] = kpos
		}
	}
	s.x.keys[pathKey(path)] = kpos
	s.value(path)
}

// key parses a possibly dotted key and returns its parts and where it
// starts.
func (s *scanner) key() ([]string, Pos) {
	start := s.pos()
	var parts []string
	for {
		part, ok := s.keyPart()
		if !ok {
			return parts, start
		}
		parts = append(parts, part)
		s.skipBlank()
		if s.peek() != '.' {
			return parts, start
		}
		s.advance()
		s.skipBlank()
	}
}

func (s *scanner) keyPart() (string, bool) {
	switch c := s.peek(); {
	case c == '"' || c == '\'':
		from := s.i
		if !s.str() {
			return "", false
		}
		raw := string(s.src[from:s.i])
		if c == '\'' {
			return raw[1 : len(raw)-1], true
		}
		if u, err := strconv.Unquote(raw); err == nil {
			return u, true
		}
		return raw[1 : len(raw)-1], true
	case isBare(c):
		from := s.i
		for isBare(s.peek()) {
			s.advance()
		}
		return string(s.src[from:s.i]), true
	}
	return "", false
}

func isBare(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// value records where the value of path starts and skips over it,
// descending into arrays and inline tables.
func (s *scanner) value(path []string) {
	if s.depth >= maxDepth {
		s.skipLine()
		return
	}
	s.x.vals[pathKey(path)] = s.pos()
	s.depth++
	defer func() { s.depth-- }()
	switch s.peek() {
	case '"', '\'':
		s.str()
	case '[':
		s.array(path)
	case '{':
		s.inlineTable(path)
	default:
		// Numbers, booleans, dates (which may contain a space).
		for !s.eof() {
			switch s.peek() {
			case ',', ']', '}', '\n', '#':
				return
			}
			s.advance()
		}
	}
}

func (s *scanner) array(path []string) {
	elem := make([]string, len(path)+1)
	copy(elem, path)
	n := 0
	s.items(']', func() {
		elem[len(path)] = strconv.Itoa(n)
		s.value(elem)
		n++
	})
}

func (s *scanner) inlineTable(path []string) {
	s.items('}', func() { s.keyValue(path) })
}

// items walks the comma-separated items of the array or inline table
// opening at s.i up to its close byte (or the end of the text), calling
// item at the start of each. An item that consumes nothing loses one byte
// (a stray '}' or '=' in text toml rejected), so the walk always ends.
func (s *scanner) items(close byte, item func()) {
	s.advance()
	for {
		s.skipSpace()
		switch s.peek() {
		case 0:
			if s.eof() {
				return
			}
		case close:
			s.advance()
			return
		case ',':
			s.advance()
			continue
		}
		before := s.i
		item()
		if s.i == before {
			s.advance()
		}
	}
}

// str skips a basic, literal or multi-line string starting at the quote.
// It reports whether the string was closed.
func (s *scanner) str() bool {
	q := s.peek()
	if s.peekAt(1) == q && s.peekAt(2) == q {
		s.advance()
		s.advance()
		s.advance()
		for !s.eof() {
			c := s.peek()
			if c == q && s.peekAt(1) == q && s.peekAt(2) == q {
				s.advance()
				s.advance()
				s.advance()
				// Up to two quotes may directly precede the closing three.
				for k := 0; k < 2 && s.peek() == q; k++ {
					s.advance()
				}
				return true
			}
			if c == '\\' && q == '"' {
				s.advance()
			}
			s.advance()
		}
		return false
	}
	s.advance()
	for !s.eof() {
		switch c := s.peek(); {
		case c == q:
			s.advance()
			return true
		case c == '\n':
			return false
		case c == '\\' && q == '"':
			s.advance()
			if s.peek() == '\n' {
				return false
			}
		}
		s.advance()
	}
	return false
}
