package ahocorasick

import (
	"errors"
	"fmt"
	"math/bits"
	"slices"
)

// State is a position in a Matcher's automaton. The zero State is the
// start; any other value must come from the same Matcher.
type State uint32

// Matcher is an immutable automaton for a set of patterns. Its methods may
// be called concurrently.
type Matcher struct {
	cs *automaton // case-sensitive patterns, nil if none
	ci *automaton // nocase patterns, nil if none
	// When both automata exist a State is cs | ci<<shift.
	shift uint8
	mask  uint32
	n     int // patterns given to Build, including ignored empty ones
}

const (
	// maxStates bounds one automaton's build memory.
	maxStates = 1 << 24
	// denseBudget is the table memory, per automaton, spent on full
	// transition rows for the shallowest states.
	denseBudget = 8 << 20
)

// ErrTooLarge is returned when the patterns need more states than a State
// can address.
var ErrTooLarge = errors.New("ahocorasick: pattern set too large")

// automaton is one Aho-Corasick DFA over an equivalence-class alphabet.
// States are first numbered in breadth-first order and the shallowest
// denseN get full rows. Internally a state is a code: a dense state's code
// is its row offset in dense (so a step is one add and one load), with the
// dense states that report patterns placed last so "code >= matchLo" is
// the only test the hot loop needs; a sparse state's code is denseEnd plus
// its sparse index. A State exposed to callers is the state's slot: row
// number for dense states, denseN plus sparse index otherwise.
//
// When a Matcher has both automata, the nocase one's rows follow the
// case-sensitive one's in one table (its codes start at base), so a loop
// stepping both indexes a single slice.
type automaton struct {
	cls      [256]uint8 // byte -> class
	stride   uint32     // number of classes
	maxLen   int        // longest pattern, which bounds a state's depth
	n        uint32     // number of states
	denseN   uint32
	base     uint32   // code of row 0
	denseEnd uint32   // base + denseN*stride
	matchLo  uint32   // code of the first dense state that reports
	dense    []uint32 // base entries (another automaton's), then denseN rows of stride codes

	// Sparse states: trie edges sorted by class, and the failure link that
	// resolves every other class; all as codes.
	fail     []uint32 // by sparse index
	edgeOff  []uint32 // len n-denseN+1
	edgeCls  []uint8
	edgeNext []uint32

	outOff []uint32 // by slot, len n+1; out = outIDs[outOff[s]:outOff[s+1]], ascending
	outIDs []int32
}

// Build compiles patterns into a Matcher. nocase[i] (when present) makes
// pattern i match with ASCII letters folded; a missing entry means
// case-sensitive. Pattern IDs reported by the Matcher are indexes into
// patterns. Empty patterns are accepted and never match.
func Build(patterns [][]byte, nocase []bool) (*Matcher, error) {
	var cs, ci []int
	for i, p := range patterns {
		if len(p) == 0 {
			continue
		}
		if i < len(nocase) && nocase[i] {
			ci = append(ci, i)
		} else {
			cs = append(cs, i)
		}
	}
	m := &Matcher{n: len(patterns)}
	var err error
	if len(cs) > 0 {
		if m.cs, err = build(patterns, cs, false, 0); err != nil {
			return nil, err
		}
	}
	if len(ci) > 0 {
		var base uint32
		if m.cs != nil {
			base = uint32(len(m.cs.dense))
		}
		if m.ci, err = build(patterns, ci, true, base); err != nil {
			return nil, err
		}
		if m.cs != nil {
			copy(m.ci.dense, m.cs.dense)
			m.cs.dense = m.ci.dense[:base:base]
		}
	}
	if m.cs != nil && m.ci != nil {
		m.shift = uint8(bits.Len32(m.cs.n - 1))
		m.mask = 1<<m.shift - 1
		if int(m.shift)+bits.Len32(m.ci.n-1) > 32 {
			return nil, fmt.Errorf("%w: %d case-sensitive and %d nocase states do not fit a State", ErrTooLarge, m.cs.n, m.ci.n)
		}
	}
	return m, nil
}

// Len returns the number of patterns given to Build.
func (m *Matcher) Len() int { return m.n }

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

type edge struct {
	c  uint8
	to uint32
}

// build makes the automaton for patterns[ids...], its codes starting at
// base (its dense table has base leading entries for the caller to fill).
func build(patterns [][]byte, ids []int, fold bool, base uint32) (*automaton, error) {
	a := &automaton{base: base}
	var used [256]bool
	for _, id := range ids {
		for _, c := range patterns[id] {
			if fold {
				c = lower(c)
			}
			used[c] = true
		}
	}
	var k int
	for _, u := range used {
		if u {
			k++
		}
	}
	next := 0
	if k < 256 {
		next = 1 // class 0 is every byte no pattern uses
	}
	for c := range 256 {
		if used[c] {
			a.cls[c] = uint8(next)
			next++
		}
	}
	if fold {
		for c := byte('A'); c <= 'Z'; c++ {
			a.cls[c] = a.cls[lower(c)]
		}
	}
	a.stride = uint32(next)

	// Trie, in insertion order.
	kids := [][]edge{nil}
	own := [][]int32{nil}
	for _, id := range ids {
		a.maxLen = max(a.maxLen, len(patterns[id]))
		s := uint32(0)
		for _, c := range patterns[id] {
			cl := a.cls[c]
			t, ok := findEdge(kids[s], cl)
			if !ok {
				if len(kids) >= maxStates {
					return nil, fmt.Errorf("%w: more than %d states", ErrTooLarge, maxStates)
				}
				t = uint32(len(kids))
				kids[s] = append(kids[s], edge{cl, t})
				kids = append(kids, nil)
				own = append(own, nil)
			}
			s = t
		}
		own[s] = append(own[s], int32(id))
	}
	n := uint32(len(kids))
	a.n = n

	// Breadth-first renumbering, children by class.
	order := make([]uint32, 0, n)
	order = append(order, 0)
	for i := 0; i < len(order); i++ {
		k := kids[order[i]]
		slices.SortFunc(k, func(x, y edge) int { return int(x.c) - int(y.c) })
		for _, e := range k {
			order = append(order, e.to)
		}
	}
	newID := make([]uint32, n)
	for i, old := range order {
		newID[old] = uint32(i)
	}
	edges := make([][]edge, n)
	for old, k := range kids {
		for j := range k {
			k[j].to = newID[k[j].to]
		}
		edges[newID[old]] = k
	}

	// Failure links and output sets, in breadth-first order so a state's
	// failure target (strictly shallower) is complete before it is used.
	fail := make([]uint32, n)
	outs := make([][]int32, n)
	outs[0] = own[order[0]]
	for u := uint32(0); u < n; u++ {
		for _, e := range edges[u] {
			v := e.to
			f := uint32(0)
			if u != 0 {
				f = fail[u]
				for {
					if t, ok := findEdge(edges[f], e.c); ok {
						f = t
						break
					}
					if f == 0 {
						break
					}
					f = fail[f]
				}
			}
			fail[v] = f
			outs[v] = mergeIDs(own[order[v]], outs[f])
		}
	}
	a.denseN = min(n, max(1, uint32(denseBudget/(4*int(a.stride)))))
	if uint64(base)+uint64(a.denseN)*uint64(a.stride)+uint64(n) > 1<<32-1 {
		return nil, fmt.Errorf("%w: tables exceed 32-bit codes", ErrTooLarge)
	}
	a.denseEnd = base + a.denseN*a.stride
	// Codes: dense non-reporting states, dense reporting states, sparse.
	code := make([]uint32, n)
	slot := make([]uint32, n) // by breadth-first id
	var row uint32
	for pass := range 2 {
		for s := range a.denseN {
			if (len(outs[s]) > 0) == (pass == 1) {
				slot[s], code[s] = row, base+row*a.stride
				row++
			}
		}
		if pass == 0 {
			a.matchLo = base + row*a.stride
		}
	}
	for s := a.denseN; s < n; s++ {
		slot[s], code[s] = s, a.denseEnd+s-a.denseN
	}
	bySlot := make([][]int32, n)
	for s := range n {
		bySlot[slot[s]] = outs[s]
	}
	a.outOff = make([]uint32, n+1)
	for s := range n {
		a.outIDs = append(a.outIDs, bySlot[s]...)
		a.outOff[s+1] = uint32(len(a.outIDs))
	}

	// Rows in breadth-first order: a state's failure target is shallower,
	// so its row is complete by the time it is copied.
	a.dense = make([]uint32, a.denseEnd)
	for s := range a.denseN {
		r := a.dense[code[s] : code[s]+a.stride]
		if s != 0 {
			copy(r, a.dense[code[fail[s]]:])
		} else {
			for c := range r {
				r[c] = code[0] // missing edges go back to the root
			}
		}
		for _, e := range edges[s] {
			r[e.c] = code[e.to]
		}
	}
	a.fail = make([]uint32, n-a.denseN)
	a.edgeOff = make([]uint32, n-a.denseN+1)
	for s := a.denseN; s < n; s++ {
		a.fail[s-a.denseN] = code[fail[s]]
		for _, e := range edges[s] {
			a.edgeCls = append(a.edgeCls, e.c)
			a.edgeNext = append(a.edgeNext, code[e.to])
		}
		a.edgeOff[s-a.denseN+1] = uint32(len(a.edgeCls))
	}
	return a, nil
}

func findEdge(k []edge, c uint8) (uint32, bool) {
	for _, e := range k {
		if e.c == c {
			return e.to, true
		}
	}
	return 0, false
}

// mergeIDs returns the ascending union of two ascending, disjoint lists.
func mergeIDs(x, y []int32) []int32 {
	if len(x) == 0 {
		return y
	}
	if len(y) == 0 {
		return x
	}
	out := make([]int32, 0, len(x)+len(y))
	for len(x) > 0 && len(y) > 0 {
		if x[0] < y[0] {
			out, x = append(out, x[0]), x[1:]
		} else {
			out, y = append(out, y[0]), y[1:]
		}
	}
	return append(append(out, x...), y...)
}
