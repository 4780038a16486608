package ahocorasick

// code converts a caller's State (a slot) to the internal code.
func (a *automaton) code(slot uint32) uint32 {
	if slot < a.denseN {
		return a.base + slot*a.stride
	}
	return a.denseEnd + slot - a.denseN
}

// slot converts an internal code back to the State a caller keeps.
func (a *automaton) slot(code uint32) uint32 {
	if code < a.denseEnd {
		return (code - a.base) / a.stride
	}
	return a.denseN + code - a.denseEnd
}

// step returns the code after class c from code s.
func (a *automaton) step(s uint32, c uint8) uint32 {
	if s < a.denseEnd {
		return a.dense[s+uint32(c)]
	}
	return a.slow(s, c)
}

// slow resolves a transition from a sparse state through failure links
// until an edge or a dense state answers.
func (a *automaton) slow(s uint32, c uint8) uint32 {
	for s >= a.denseEnd {
		i := s - a.denseEnd
		for j := a.edgeOff[i]; j < a.edgeOff[i+1]; j++ {
			if a.edgeCls[j] == c {
				return a.edgeNext[j]
			}
		}
		s = a.fail[i]
	}
	return a.dense[s+uint32(c)]
}

// out returns the patterns reported at code s, ascending. Only codes at
// or above matchLo can report.
func (a *automaton) out(s uint32) []int32 {
	if s < a.matchLo {
		return nil
	}
	k := a.slot(s)
	return a.outIDs[a.outOff[k]:a.outOff[k+1]]
}

// Scan feeds data to the automaton from state st and calls fn for every
// pattern occurrence that ends within data: end is the index in data just
// past the occurrence's last byte (the occurrence may have begun in an
// earlier call). Occurrences are reported by increasing end, and by
// increasing pattern ID at one end. If fn returns false, Scan stops and
// returns the state after data[end-1]; otherwise it returns the state
// after all of data. Scan allocates nothing itself.
func (m *Matcher) Scan(st State, data []byte, fn func(patternID int, end int) bool) State {
	switch {
	case m.ci == nil && m.cs == nil:
		return st
	case m.ci == nil:
		return State(m.cs.scan(uint32(st), data, fn))
	case m.cs == nil:
		return State(m.ci.scan(uint32(st), data, fn))
	}
	return m.scan2(st, data, fn)
}

// scan is Scan for one automaton. Walking a DFA is one dependent load per
// byte, so a long buffer is walked as two interleaved chains whose loads
// overlap: chain A from st over the first half, chain B from the start
// state beginning maxLen bytes before the middle. A state is the longest
// suffix of the input that is a pattern prefix, at most maxLen long, so
// from the middle on B is in exactly the state a single walk would be.
// B's matches ending after the middle must wait for A's, so B pauses at
// its first one until A has finished.
func (a *automaton) scan(st uint32, data []byte, fn func(int, int) bool) uint32 {
	s := a.code(st)
	mid := len(data) / 2
	if a.maxLen > 32 || mid < 4*a.maxLen || mid < 64 {
		s, _, _ = a.run(s, data, 0, len(data), fn)
		return a.slot(s)
	}
	dense, denseEnd, matchLo, cls := a.dense, a.denseEnd, a.matchLo, &a.cls
	x, i := s, 0
	y, j := a.base, mid-a.maxLen
	pending := false
	for i < mid {
		if x < matchLo && y < matchLo {
			var k int
			k, x, y = walk2(dense, cls, matchLo, data[i:mid], data[j:], x, y)
			i += k
			j += k
			if x >= matchLo {
				for _, id := range a.out(x) {
					if !fn(int(id), i) {
						return a.slot(x)
					}
				}
			}
			if y >= matchLo && j > mid && len(a.out(y)) > 0 {
				pending = true
				break
			}
			continue
		}
		cx, cy := uint32(cls[data[i]]), cls[data[j]]
		if x < denseEnd {
			x = dense[x+cx]
		} else {
			x = a.slow(x, uint8(cx))
		}
		if y < denseEnd {
			y = dense[y+uint32(cy)]
		} else {
			y = a.slow(y, cy)
		}
		i++
		j++
		if x >= matchLo {
			for _, id := range a.out(x) {
				if !fn(int(id), i) {
					return a.slot(x)
				}
			}
		}
		if y >= matchLo && j > mid && len(a.out(y)) > 0 {
			pending = true
			break
		}
	}
	if pending {
		var stopped bool
		if x, _, stopped = a.run(x, data, i, mid, fn); stopped {
			return a.slot(x)
		}
		for _, id := range a.out(y) {
			if !fn(int(id), j) {
				return a.slot(y)
			}
		}
	}
	y, _, _ = a.run(y, data, j, len(data), fn)
	return a.slot(y)
}

// walk2 is walk4 for one automaton: chain x over p, y over q.
func walk2(d []uint32, cls *[256]uint8, lo uint32, p, q []byte, x, y uint32) (int, uint32, uint32) {
	q = q[:len(p)]
	for k := 0; k < len(p); k++ {
		x, y = d[x+uint32(cls[p[k]])], d[y+uint32(cls[q[k]])]
		if x >= lo || y >= lo {
			return k + 1, x, y
		}
	}
	return len(p), x, y
}

// run walks data[from:to] from code s as one chain, reporting to fn. It
// returns the code reached, the position and whether fn stopped it.
func (a *automaton) run(s uint32, data []byte, from, to int, fn func(int, int) bool) (uint32, int, bool) {
	dense, denseEnd, matchLo, cls := a.dense, a.denseEnd, a.matchLo, &a.cls
	data = data[:to]
	for i := from; i < len(data); {
		if s < denseEnd {
			s = dense[s+uint32(cls[data[i]])]
			i++
			if s < matchLo {
				continue
			}
		} else {
			s = a.slow(s, cls[data[i]])
			i++
		}
		for _, id := range a.out(s) {
			if !fn(int(id), i) {
				return s, i, true
			}
		}
	}
	return s, len(data), false
}

func (a *automaton) find(st uint32, data []byte) (uint32, int, int, bool) {
	var id, end int
	found := false
	s := a.scan(st, data, func(pid, e int) bool {
		id, end, found = pid, e, true
		return false
	})
	return s, id, end, found
}

// scan2 is Scan with both automata, stepped in lockstep; long buffers
// are split into two interleaved halves as in automaton.scan.
func (m *Matcher) scan2(st State, data []byte, fn func(int, int) bool) State {
	x, y := m.cs.code(uint32(st)&m.mask), m.ci.code(uint32(st)>>m.shift)
	warm := max(m.cs.maxLen, m.ci.maxLen)
	mid := len(data) / 2
	if warm > 32 || mid < 4*warm || mid < 64 {
		x, y, _ = m.run2(x, y, data, 0, len(data), fn)
		return m.pack(x, y)
	}
	cs, ci := m.cs, m.ci
	i, j := 0, mid-warm
	bx, by := cs.base, ci.base
	pending := false
	for i < mid {
		if x < cs.matchLo && y < ci.matchLo && bx < cs.matchLo && by < ci.matchLo {
			// All four chains are in dense rows that report nothing: run
			// the tight loop until one is not.
			var k int
			k, x, y, bx, by = walk4(ci.dense, &cs.cls, &ci.cls, cs.matchLo, ci.matchLo, data[i:mid], data[j:], x, y, bx, by)
			i += k
			j += k
			if (x >= cs.matchLo || y >= ci.matchLo) && !m.report(x, y, i, fn) {
				return m.pack(x, y)
			}
			if (bx >= cs.matchLo || by >= ci.matchLo) && j > mid && len(cs.out(bx))+len(ci.out(by)) > 0 {
				pending = true
				break
			}
			continue
		}
		c, d := data[i], data[j]
		x, y = cs.step(x, cs.cls[c]), ci.step(y, ci.cls[c])
		bx, by = cs.step(bx, cs.cls[d]), ci.step(by, ci.cls[d])
		i++
		j++
		if (x >= cs.matchLo || y >= ci.matchLo) && !m.report(x, y, i, fn) {
			return m.pack(x, y)
		}
		if (bx >= cs.matchLo || by >= ci.matchLo) && j > mid && len(cs.out(bx))+len(ci.out(by)) > 0 {
			pending = true
			break
		}
	}
	if pending {
		var stopped bool
		if x, y, stopped = m.run2(x, y, data, i, mid, fn); stopped {
			return m.pack(x, y)
		}
		if !m.report(bx, by, j, fn) {
			return m.pack(bx, by)
		}
	}
	bx, by, _ = m.run2(bx, by, data, j, len(data), fn)
	return m.pack(bx, by)
}

// walk4 steps the two chains of scan2 (x, y over p; bx, by over q) through
// the shared table d while every code stays below its automaton's lo,
// i.e. in a dense row that reports nothing. It returns how many bytes it
// consumed (at least one, when p is not empty) and the codes then: the
// step that took a code to lo or above is included. Keeping this loop
// apart from the reporting lets all its state live in registers.
func walk4(d []uint32, xc, yc *[256]uint8, xlo, ylo uint32, p, q []byte, x, y, bx, by uint32) (int, uint32, uint32, uint32, uint32) {
	q = q[:len(p)]
	for k := 0; k < len(p); k++ {
		c, e := p[k], q[k]
		x, y = d[x+uint32(xc[c])], d[y+uint32(yc[c])]
		bx, by = d[bx+uint32(xc[e])], d[by+uint32(yc[e])]
		if x >= xlo || y >= ylo || bx >= xlo || by >= ylo {
			return k + 1, x, y, bx, by
		}
	}
	return len(p), x, y, bx, by
}

// run2 walks data[from:to] with both automata as one chain.
func (m *Matcher) run2(x, y uint32, data []byte, from, to int, fn func(int, int) bool) (uint32, uint32, bool) {
	cs, ci := m.cs, m.ci
	data = data[:to]
	for i := from; i < len(data); {
		c := data[i]
		x, y = cs.step(x, cs.cls[c]), ci.step(y, ci.cls[c])
		i++
		if x < cs.matchLo && y < ci.matchLo {
			continue
		}
		if !m.report(x, y, i, fn) {
			return x, y, true
		}
	}
	return x, y, false
}

// report calls fn for the patterns of codes x and y, merged by ID; false
// when fn stopped.
func (m *Matcher) report(x, y uint32, end int, fn func(int, int) bool) bool {
	ox, oy := m.cs.out(x), m.ci.out(y)
	for len(ox) > 0 || len(oy) > 0 {
		var id int32
		if len(oy) == 0 || (len(ox) > 0 && ox[0] < oy[0]) {
			id, ox = ox[0], ox[1:]
		} else {
			id, oy = oy[0], oy[1:]
		}
		if !fn(int(id), end) {
			return false
		}
	}
	return true
}

func (m *Matcher) pack(x, y uint32) State {
	return State(m.cs.slot(x) | m.ci.slot(y)<<m.shift)
}

// Find feeds data from state st up to the first pattern occurrence that
// ends within data and returns the state after that occurrence's last
// byte, the lowest pattern ID ending there, the end index (as in Scan) and
// true. Other patterns ending at the same byte are not reported again when
// scanning resumes from the returned state at data[end:]. Without an
// occurrence it returns the state after all of data and false.
func (m *Matcher) Find(st State, data []byte) (next State, patternID int, end int, ok bool) {
	switch {
	case m.ci == nil && m.cs == nil:
		return st, 0, 0, false
	case m.ci == nil:
		s, id, end, ok := m.cs.find(uint32(st), data)
		return State(s), id, end, ok
	case m.cs == nil:
		s, id, end, ok := m.ci.find(uint32(st), data)
		return State(s), id, end, ok
	}
	next = m.scan2(st, data, func(pid, e int) bool {
		patternID, end, ok = pid, e, true
		return false
	})
	return next, patternID, end, ok
}
