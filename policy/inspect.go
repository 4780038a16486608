package policy

import (
	"bytes"

	"github.com/tungate/tungate/policy/ahocorasick"
)

// Inspector matches the payload rules armed on one flow against its byte
// streams and, on a kept-alive HTTP connection whose rules need http.*
// fields, checks every request after the first. It is owned by the flow's
// relay and is not safe for concurrent use: feed both directions from one
// goroutine or serialise the calls.
//
// Feed it every byte of both directions from the start of the stream,
// including bytes an L7Extractor saw (before they are replayed upstream):
// positions (offset, depth, distance, within) count from the first byte,
// and a second request pipelined behind the first is checked here.
type Inspector struct {
	p     *Policy
	rules []armedRule  // ascending by rule index (and so by global entry ID)
	ents  []entryState // the entries of rules[i] are ents[rules[i].e0:][:len(entries)]
	st    [2]ahocorasick.State
	depth int64 // bytes scanned per direction; 0 = unlimited
	seen  [2]int64
	done  bool
	noPre bool // an armed regex has no prefilter: try regexes on every Feed
	scan  func(id, end int) bool

	// The Feed call being scanned, for scan.
	dir   StreamDir
	base  int64 // stream position of data[0]
	data  []byte
	sbase int64 // stream position of the slice being scanned
	due   bool  // some regex's prefilter hit in data
	best  int   // index in rules of the first completed rule, -1 none
	bestK int   // the entry that completed it

	http *httpCheck // nil: no per-request HTTP checks
}

type armedRule struct {
	pr       *payloadRule
	e0       int32 // first entry state in Inspector.ents
	nMatched int32 // entries that have matched
	hit      Hit
}

type entryState struct {
	matched bool
	due     bool  // regex: its prefilter hit in this Feed
	last    int64 // stream end of the latest match, -1 none
	prev    int64 // of the one before
}

// NewInspector returns the matcher for the payload rules armed on f: those
// before the deciding rule of v (all rules for the default) whose L3/L4 part
// matches f; and, for a verdict Resume gave from an HTTP request, the
// per-request checks of the http.* rules. It returns nil when nothing is
// armed, and for a verdict that is not allow (the flow will not carry
// bytes). Under audit, Decide returns allow for would-be drops, so their
// flows are inspected; hits of audit-mode rules have Hit.Audit set.
func (p *Policy) NewInspector(f *Flow, v Verdict) *Inspector {
	if v.Action != ActionAllow {
		return nil
	}
	var mi matchIn
	p.prepare(f, &mi)
	var n int
	var idx [8]int32
	armed := idx[:0]
	c := p.candidates(f.Proto, f.DstPort)
	for {
		ri, ok := c.next()
		if !ok {
			break
		}
		if v.Rule >= 0 && int(ri) >= v.Rule {
			break
		}
		r := &p.rules[ri]
		if r.payload == nil || !r.matchL34(&mi) {
			continue
		}
		armed = append(armed, ri)
		n += len(r.payload.entries)
	}
	var hc *httpCheck
	if v.httpEach && v.at > 0 {
		hc = &httpCheck{f: *f, from: v.at - 1}
	}
	if n == 0 && hc == nil {
		return nil
	}
	in := &Inspector{p: p, depth: int64(p.inspect.StreamDepth), http: hc, best: -1,
		rules: make([]armedRule, 0, len(armed)), ents: make([]entryState, n)}
	for i := range in.ents {
		in.ents[i].last, in.ents[i].prev = -1, -1
	}
	var e0 int32
	for _, ri := range armed {
		r := &p.rules[ri]
		h := Hit{Rule: int(ri), RuleID: r.id, Action: r.action, Audit: r.audit, Field: FieldPayload}
		if r.action == ActionReject {
			h.Reject = resolveReject(r.reject, f.Proto)
		}
		in.rules = append(in.rules, armedRule{pr: r.payload, e0: e0, hit: h})
		for k := range r.payload.entries {
			if e := &r.payload.entries[k]; e.re != nil && e.lit == nil {
				in.noPre = true
			}
		}
		e0 += int32(len(r.payload.entries))
	}
	in.scan = in.onMatch
	return in
}

// Feed scans the next bytes of one direction of the stream. It returns the
// first armed rule, in file order, whose payload list completes within
// data (entries may have matched in earlier calls), or an HTTP request the
// http.* rules refuse. Payload hits are terminal: allow means stop
// inspecting, drop and reject mean tear the flow down, and later calls
// return (Hit{}, false). Payload scanning stops per direction after
// stream_depth bytes; HTTP requests are checked for the whole stream.
// Feed allocates nothing, except Hit.Value of a refused HTTP request.
func (in *Inspector) Feed(dir StreamDir, data []byte) (Hit, bool) {
	if in == nil || in.done || dir > ToClient {
		return Hit{}, false
	}
	var hh Hit
	httpHit := false
	if dir == ToServer && in.http != nil {
		hh, httpHit = in.http.feed(in.p, data)
	}
	ph, payHit := in.feedPayload(dir, data)
	switch {
	case payHit && (!httpHit || ph.Rule < hh.Rule):
		in.done = true
		return ph, true
	case httpHit:
		if !hh.Audit {
			in.done = true
		}
		return hh, true
	}
	return Hit{}, false
}

func (in *Inspector) feedPayload(dir StreamDir, data []byte) (Hit, bool) {
	if len(in.rules) == 0 {
		return Hit{}, false
	}
	if in.depth > 0 {
		rem := in.depth - in.seen[dir]
		if rem <= 0 {
			return Hit{}, false
		}
		if int64(len(data)) > rem {
			data = data[:rem]
		}
	}
	in.dir, in.base, in.data, in.due, in.best = dir, in.seen[dir], data, false, -1
	in.seen[dir] += int64(len(data))
	if ac := in.p.pay.ac[dir]; ac != nil {
		if sb := in.p.pay.start[dir]; sb != nil {
			in.st[dir] = in.skipScan(ac, in.st[dir], data, sb)
		} else {
			in.sbase = in.base
			in.st[dir] = ac.Scan(in.st[dir], data, in.scan)
		}
	}
	if in.due || in.noPre {
		in.runRegexes()
	}
	in.data = nil
	if in.best < 0 {
		return Hit{}, false
	}
	ar := &in.rules[in.best]
	h := ar.hit
	h.Pattern = ar.pr.entries[in.bestK].text
	h.Value = h.Pattern
	return h, true
}

// skipWindow is how many bytes skipScan feeds the automaton before it
// looks whether it is back at the start state.
const skipWindow = 4

// skipScan is Scan for automata that few bytes lead off the start state:
// at the start state it jumps to the nearest such byte (bytes.IndexByte
// per start byte, each result kept until passed), and from there feeds
// windows until the automaton is back at the start.
func (in *Inspector) skipScan(ac *ahocorasick.Matcher, st ahocorasick.State, data []byte, sb []byte) ahocorasick.State {
	var next [maxSkipBytes]int // next occurrence of sb[i] at or after pos, len(data) for none
	for i := range sb {
		next[i] = -1
	}
	pos := 0
	for pos < len(data) {
		if st == 0 {
			j := len(data)
			for i, c := range sb {
				if next[i] < pos {
					k := bytes.IndexByte(data[pos:], c)
					if k < 0 {
						next[i] = len(data)
					} else {
						next[i] = pos + k
					}
				}
				j = min(j, next[i])
			}
			if j == len(data) {
				return 0
			}
			pos = j
		}
		end := min(len(data), pos+skipWindow)
		in.sbase = in.base + int64(pos)
		st = ac.Scan(st, data[pos:end], in.scan)
		pos = end
	}
	return st
}

// onMatch handles one automaton match: pattern id ended at data[end-1].
func (in *Inspector) onMatch(id, end int) bool {
	for _, g := range in.p.pay.refs[in.dir][id] {
		i := in.find(g)
		if i < 0 {
			continue
		}
		ar := &in.rules[i]
		k := int(g - ar.pr.g0)
		e := &ar.pr.entries[k]
		if e.dirs&(1<<in.dir) == 0 {
			continue
		}
		if e.re != nil {
			in.ents[int(ar.e0)+k].due = true
			in.due = true
			continue
		}
		stop := in.sbase + int64(end)
		if in.placed(ar, k, stop-int64(len(e.lit)), stop) {
			in.record(i, k, stop)
		}
	}
	return true
}

// find returns the index in rules of the armed rule owning global entry
// g, -1 when that rule is not armed on this flow.
func (in *Inspector) find(g int32) int {
	r := in.rules
	lo, hi := 0, len(r)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if r[m].pr.g0 <= g {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == 0 {
		return -1
	}
	if ar := &r[lo-1]; g < ar.pr.g0+int32(len(ar.pr.entries)) {
		return lo - 1
	}
	return -1
}

// placed checks an occurrence [start, stop) of entry k against its
// window: offset/depth, or distance/within from the previous entry.
func (in *Inspector) placed(ar *armedRule, k int, start, stop int64) bool {
	e := &ar.pr.entries[k]
	if start < e.offset || (e.depth > 0 && stop > e.offset+e.depth) {
		return false
	}
	if !e.rel {
		return true
	}
	a, ok := in.anchor(ar, k, start)
	return ok && (e.within < 0 || stop <= a+e.distance+e.within)
}

// anchor returns the end of the latest match of entry k-1 that leaves
// room for entry k's distance before start.
func (in *Inspector) anchor(ar *armedRule, k int, start int64) (int64, bool) {
	ps := &in.ents[int(ar.e0)+k-1]
	d := ar.pr.entries[k].distance
	for _, a := range [2]int64{ps.last, ps.prev} {
		if a >= 0 && a+d <= start {
			return a, true
		}
	}
	return 0, false
}

// record notes a placed match of entry k of rules[i] ending at stop.
func (in *Inspector) record(i, k int, stop int64) {
	ar := &in.rules[i]
	es := &in.ents[int(ar.e0)+k]
	if !es.matched {
		es.matched = true
		ar.nMatched++
	}
	es.prev, es.last = es.last, stop
	if int(ar.nMatched) == len(ar.pr.entries) && (in.best < 0 || i < in.best) {
		in.best, in.bestK = i, k
	}
}

// runRegexes runs, in rule and entry order, the regex entries whose
// prefilter hit in this Feed (or that have none), each on the part of
// the data its window allows.
func (in *Inspector) runRegexes() {
	for i := range in.rules {
		ar := &in.rules[i]
		for k := range ar.pr.entries {
			e := &ar.pr.entries[k]
			es := &in.ents[int(ar.e0)+k]
			if e.re == nil || e.dirs&(1<<in.dir) == 0 || (!es.due && e.lit != nil) {
				continue
			}
			es.due = false
			lo, hi := in.base, in.base+int64(len(in.data))
			lo = max(lo, e.offset)
			if e.depth > 0 {
				hi = min(hi, e.offset+e.depth)
			}
			if e.rel {
				ps := &in.ents[int(ar.e0)+k-1]
				if ps.last < 0 {
					continue
				}
				lo = max(lo, ps.last+e.distance)
				if e.within >= 0 {
					hi = min(hi, ps.last+e.distance+e.within)
				}
			}
			if lo >= hi {
				continue
			}
			w := in.data[lo-in.base : hi-in.base]
			if k+1 < len(ar.pr.entries) && ar.pr.entries[k+1].rel {
				// The next entry is placed after this one: find where it
				// ends (this allocates the index pair, on a match only).
				if loc := e.re.FindIndex(w); loc != nil {
					in.record(i, k, lo+int64(loc[1]))
				}
			} else if e.re.Match(w) {
				in.record(i, k, hi)
			}
		}
	}
}

// Done reports whether the inspector has hit or has scanned stream_depth
// bytes in both directions and checks no HTTP requests, so the caller may
// stop feeding it.
func (in *Inspector) Done() bool {
	if in == nil || in.done {
		return true
	}
	if in.http != nil && !in.http.over() {
		return false
	}
	if len(in.rules) == 0 {
		return true
	}
	return in.depth > 0 && in.seen[ToServer] >= in.depth && in.seen[ToClient] >= in.depth
}
