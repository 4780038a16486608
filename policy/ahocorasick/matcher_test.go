package ahocorasick

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

type hit struct{ id, end int }

// naive finds every occurrence with bytes.Index-style comparison; ends are
// absolute offsets into data.
func naive(patterns [][]byte, nocase []bool, data []byte) []hit {
	var hits []hit
	ld := asciiLower(data) // ASCII letters only, as the matcher folds
	for end := 1; end <= len(data); end++ {
		for id, p := range patterns {
			if len(p) == 0 || len(p) > end {
				continue
			}
			if id < len(nocase) && nocase[id] {
				if bytes.Equal(ld[end-len(p):end], asciiLower(p)) {
					hits = append(hits, hit{id, end})
				}
			} else if bytes.Equal(data[end-len(p):end], p) {
				hits = append(hits, hit{id, end})
			}
		}
	}
	return hits
}

func asciiLower(p []byte) []byte {
	q := make([]byte, len(p))
	for i, c := range p {
		q[i] = lower(c)
	}
	return q
}

// scanSplit scans data in the given pieces and returns absolute hits.
func scanSplit(m *Matcher, data []byte, cuts []int) []hit {
	var hits []hit
	var st State
	off := 0
	for _, c := range append(cuts, len(data)) {
		base := off
		st = m.Scan(st, data[off:c], func(id, end int) bool {
			hits = append(hits, hit{id, base + end})
			return true
		})
		off = c
	}
	return hits
}

// findAll drives Find repeatedly over pieces. Find only reports the lowest
// ID at an end, so the oracle is filtered to match.
func findAll(m *Matcher, data []byte, cuts []int) []hit {
	var hits []hit
	var st State
	off := 0
	for _, c := range append(cuts, len(data)) {
		piece := data[off:c]
		base := off
		for len(piece) > 0 {
			var id, end int
			var ok bool
			st, id, end, ok = m.Find(st, piece)
			if !ok {
				break
			}
			hits = append(hits, hit{id, base + end})
			piece, base = piece[end:], base+end
		}
		off = c
	}
	return hits
}

func firstPerEnd(h []hit) []hit {
	var out []hit
	for i, x := range h {
		if i == 0 || h[i-1].end != x.end {
			out = append(out, x)
		}
	}
	return out
}

func randCuts(r *rand.Rand, n int) []int {
	var cuts []int
	for i := 1; i < n; i++ {
		if r.IntN(8) == 0 {
			cuts = append(cuts, i)
		}
	}
	return cuts
}

func check(t *testing.T, r *rand.Rand, patterns [][]byte, nocase []bool, data []byte) {
	t.Helper()
	m, err := Build(patterns, nocase)
	if err != nil {
		t.Fatal(err)
	}
	want := naive(patterns, nocase, data)
	cuts := randCuts(r, len(data))
	if got := scanSplit(m, data, nil); !slices.Equal(got, want) {
		t.Fatalf("whole: got %v want %v\npatterns %q nocase %v data %q", got, want, patterns, nocase, data)
	}
	if got := scanSplit(m, data, cuts); !slices.Equal(got, want) {
		t.Fatalf("split %v: got %v want %v\npatterns %q nocase %v data %q", cuts, got, want, patterns, nocase, data)
	}
	if got, w := findAll(m, data, nil), firstPerEnd(want); !slices.Equal(got, w) {
		t.Fatalf("find whole: got %v want %v\npatterns %q nocase %v data %q", got, w, patterns, nocase, data)
	}
	if got, w := findAll(m, data, cuts), firstPerEnd(want); !slices.Equal(got, w) {
		t.Fatalf("find split %v: got %v want %v\npatterns %q nocase %v data %q", cuts, got, w, patterns, nocase, data)
	}
}

// smallAlphabet makes overlaps and shared prefixes likely.
func randBytes(r *rand.Rand, n int, alpha string) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = alpha[r.IntN(len(alpha))]
	}
	return b
}

func TestAgainstNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphas := []string{"ab", "aAbB", "abcABC\x00\xff", "xyzXYZ01."}
	for iter := range 3000 {
		alpha := alphas[iter%len(alphas)]
		np := 1 + r.IntN(12)
		patterns := make([][]byte, np)
		nocase := make([]bool, np)
		for i := range patterns {
			patterns[i] = randBytes(r, r.IntN(6), alpha)
			nocase[i] = iter%3 != 0 && r.IntN(2) == 0
		}
		if iter%5 == 0 {
			nocase = nocase[:r.IntN(np)] // short nocase slice means case-sensitive
		}
		check(t, r, patterns, nocase, randBytes(r, r.IntN(200), alpha))
	}
}

func TestFullByteRange(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		np := 1 + r.IntN(40)
		patterns := make([][]byte, np)
		nocase := make([]bool, np)
		for i := range patterns {
			patterns[i] = randBytes(r, 1+r.IntN(3), allBytes)
			nocase[i] = r.IntN(2) == 0
		}
		check(t, r, patterns, nocase, randBytes(r, 2000, allBytes))
	}
}

var allBytes = func() string {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return string(b)
}()

// TestSparseStates forces most states past the dense budget so the
// failure-link path is exercised against the oracle.
func TestSparseStates(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var patterns [][]byte
	var nocase []bool
	for range 600 {
		patterns = append(patterns, randBytes(r, 20+r.IntN(40), allBytes))
		nocase = append(nocase, r.IntN(2) == 0)
	}
	// Plant overlapping, shared-prefix patterns as well.
	base := randBytes(r, 64, "abcd")
	for i := 1; i < len(base); i += 3 {
		patterns = append(patterns, base[i/2:i])
		nocase = append(nocase, false)
	}
	m, err := Build(patterns, nocase)
	if err != nil {
		t.Fatal(err)
	}
	if m.cs.denseN == m.cs.n || m.ci.denseN == m.ci.n || len(m.cs.edgeCls) == 0 {
		t.Fatalf("expected sparse states: cs %d/%d ci %d/%d", m.cs.denseN, m.cs.n, m.ci.denseN, m.ci.n)
	}
	data := randBytes(r, 4000, allBytes)
	for range 20 {
		p := patterns[r.IntN(len(patterns))]
		at := r.IntN(len(data) - len(p))
		copy(data[at:], p)
	}
	copy(data[100:], base)
	want := naive(patterns, nocase, data)
	if len(want) < 20 {
		t.Fatalf("oracle found only %d hits", len(want))
	}
	if got := scanSplit(m, data, randCuts(r, len(data))); !slices.Equal(got, want) {
		t.Fatalf("got %d hits, want %d", len(got), len(want))
	}
}

func TestNocaseFolding(t *testing.T) {
	m, err := Build([][]byte{[]byte("Host:"), []byte("host:"), []byte("\xc3\x89t\xc3\xa9")}, []bool{true, false, true})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		in   string
		want []hit
	}{
		{"HOST:", []hit{{0, 5}}},
		{"host:", []hit{{0, 5}, {1, 5}}},
		{"hOsT:", []hit{{0, 5}}},
		{"\xc3\x89T\xc3\xa9", []hit{{2, 5}}}, // only ASCII folds
		{"\xc3\xa9t\xc3\xa9", nil},
	}
	for _, c := range cases {
		if got := scanSplit(m, []byte(c.in), nil); !slices.Equal(got, c.want) {
			t.Errorf("%q: got %v want %v", c.in, got, c.want)
		}
	}
}

func TestStopEarly(t *testing.T) {
	m, err := Build([][]byte{[]byte("a"), []byte("aa")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var calls int
	st := m.Scan(0, []byte("aaaa"), func(id, end int) bool {
		calls++
		return !(id == 1 && end == 2)
	})
	if calls != 3 { // (0,1) (0,2) (1,2)
		t.Fatalf("calls = %d", calls)
	}
	// Resuming from the returned state continues after byte 2.
	var rest []hit
	m.Scan(st, []byte("a"), func(id, end int) bool { rest = append(rest, hit{id, end}); return true })
	if !slices.Equal(rest, []hit{{0, 1}, {1, 1}}) {
		t.Fatalf("rest = %v", rest)
	}
}

func TestEmpty(t *testing.T) {
	for _, ps := range [][][]byte{nil, {nil, {}}} {
		m, err := Build(ps, nil)
		if err != nil {
			t.Fatal(err)
		}
		if st := m.Scan(0, []byte("abc"), func(int, int) bool { t.Fatal("match"); return true }); st != 0 {
			t.Fatalf("state %d", st)
		}
		if _, _, _, ok := m.Find(0, []byte("abc")); ok {
			t.Fatal("find matched")
		}
	}
}

func TestScanAllocs(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	patterns, nocase := benchPatterns(r, 200, true, true)
	m, err := Build(patterns, nocase)
	if err != nil {
		t.Fatal(err)
	}
	data := benchPayload(r, patterns)
	var n int
	fn := func(int, int) bool { n++; return true }
	allocs := testing.AllocsPerRun(100, func() {
		st := m.Scan(0, data[:700], fn)
		m.Scan(st, data[700:], fn)
		m.Find(0, data)
	})
	if allocs != 0 {
		t.Fatalf("allocs/run = %v", allocs)
	}
	if n == 0 {
		t.Fatal("benchmark payload has no matches")
	}
}

// benchPatterns makes n patterns of 4..24 bytes like payload signatures:
// printable text, plus arbitrary bytes in a quarter of them when binary;
// every other one nocase when mixed.
func benchPatterns(r *rand.Rand, n int, binary, mixed bool) ([][]byte, []bool) {
	const printable = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/.-_=:; "
	patterns := make([][]byte, n)
	nocase := make([]bool, n)
	for i := range patterns {
		if binary && i%4 == 0 {
			patterns[i] = randBytes(r, 4+r.IntN(20), allBytes)
		} else {
			patterns[i] = randBytes(r, 4+r.IntN(20), printable)
		}
		nocase[i] = mixed && i%2 == 1
	}
	return patterns, nocase
}

// benchPayload is a 1500-byte mostly-text packet with a few planted hits.
func benchPayload(r *rand.Rand, patterns [][]byte) []byte {
	data := randBytes(r, 1500, "GET /index.html HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: x\x00\x01\xfe")
	for range 3 {
		p := patterns[r.IntN(len(patterns))]
		copy(data[r.IntN(len(data)-len(p)):], p)
	}
	return data
}

// BenchmarkScan scans 1500-byte packets of HTTP-like text with some
// binary bytes and a few planted hits.
func BenchmarkScan(b *testing.B) {
	type variant struct {
		name          string
		binary, mixed bool
	}
	for _, n := range []int{10, 1000, 10000} {
		for _, v := range []variant{{"", false, false}, {"/mixedcase", false, true}, {"/binary", true, false}} {
			r := rand.New(rand.NewPCG(9, uint64(n)))
			patterns, nocase := benchPatterns(r, n, v.binary, v.mixed)
			m, err := Build(patterns, nocase)
			if err != nil {
				b.Fatal(err)
			}
			payloads := make([][]byte, 64)
			for i := range payloads {
				payloads[i] = benchPayload(r, patterns)
			}
			b.Run(fmt.Sprintf("patterns=%d%s", n, v.name), func(b *testing.B) {
				b.SetBytes(1500)
				b.ReportAllocs()
				var hits int
				fn := func(int, int) bool { hits++; return true }
				var st State
				i := 0
				for b.Loop() {
					st = m.Scan(st, payloads[i&63], fn)
					i++
				}
				_ = hits
			})
		}
	}
}

// TestLongBuffers covers the interleaved two-chain walk (long buffers),
// including matches around the middle and stops inside both halves, with
// Find resuming after every match.
func TestLongBuffers(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for iter := range 300 {
		alpha := []string{"ab", "abc", "aAbBcCdD", allBytes}[iter%4]
		np := 1 + r.IntN(20)
		patterns := make([][]byte, np)
		nocase := make([]bool, np)
		for i := range patterns {
			patterns[i] = randBytes(r, 1+r.IntN(12), alpha)
			nocase[i] = iter%2 == 1 && r.IntN(3) == 0
		}
		data := randBytes(r, 200+r.IntN(3000), alpha)
		check(t, r, patterns, nocase, data)
	}
}
