package policy

import (
	"encoding/hex"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
	"unicode/utf8"

	"github.com/tungate/tungate/internal/cfgerr"
	"github.com/tungate/tungate/policy/ahocorasick"
)

// payloadRule is a rule's compiled payload list: every entry must match
// (an AND sequence); entries with distance/within are placed relative to
// the previous entry's match.
type payloadRule struct {
	entries []payloadEntry
	g0      int32 // global ID of entries[0] in Policy.pay
}

// payloadEntry is one compiled payload condition.
type payloadEntry struct {
	text   string // as configured, for Hit.Pattern and logs
	lit    []byte // the literal, or a regex's prefilter literal; nil: none
	nocase bool   // lit is matched with ASCII case folded
	dirs   uint8  // bit per StreamDir
	re     *regexp.Regexp

	offset, depth    int64 // absolute window; depth 0 = unbounded
	rel              bool  // distance or within given
	distance, within int64 // within < 0 = unbounded
}

// minPrefilter is the shortest required literal worth running a regex
// on: shorter ones would fire on most segments.
const minPrefilter = 2

func compilePayload(pcs []PayloadConfig, key []string, errs *cfgerr.List) *payloadRule {
	if len(pcs) == 0 {
		return nil
	}
	pr := &payloadRule{}
	for j := range pcs {
		e, msgKey, msg := compileEntry(&pcs[j], j, pcs)
		if msg != "" {
			errs.Add(cfgerr.New(msg, key, "payload", j, msgKey))
			continue
		}
		pr.entries = append(pr.entries, e)
	}
	return pr // with errors reported it never reaches a Policy
}

func compileEntry(pc *PayloadConfig, j int, all []PayloadConfig) (e payloadEntry, key, msg string) {
	switch pc.Dir {
	case "", "to_server":
		e.dirs = 1 << ToServer
	case "to_client":
		e.dirs = 1 << ToClient
	case "both":
		e.dirs = 1<<ToServer | 1<<ToClient
	default:
		return e, "dir", fmt.Sprintf("unknown dir %q (want to_server, to_client or both)", pc.Dir)
	}
	n := 0
	for _, s := range []string{pc.Contains, pc.Hex, pc.Regex} {
		if s != "" {
			n++
		}
	}
	switch {
	case n == 0:
		return e, "contains", "contains must not be empty (or give hex or regex)"
	case n > 1:
		return e, "contains", "give only one of contains, hex and regex"
	}
	e.nocase = pc.NoCase
	switch {
	case pc.Contains != "":
		e.text, e.lit = pc.Contains, []byte(pc.Contains)
	case pc.Hex != "":
		if pc.NoCase {
			return e, "nocase", "nocase does not apply to hex (it is byte-exact)"
		}
		b, err := parseHex(pc.Hex)
		if err != nil {
			return e, "hex", err.Error()
		}
		e.text, e.lit = "hex:"+pc.Hex, b
	default:
		expr := pc.Regex
		if pc.NoCase {
			expr = "(?i)" + expr
		}
		re, err := regexp.Compile(expr)
		if err != nil {
			return e, "regex", fmt.Sprintf("invalid regex %q: %s", pc.Regex, regexErr(err))
		}
		e.text, e.re = "regex:"+pc.Regex, re
		e.lit, e.nocase = prefilter(expr)
	}
	if pc.Offset < 0 || pc.Depth < 0 {
		return e, "offset", "offset and depth must not be negative"
	}
	e.offset, e.depth, e.within = pc.Offset, pc.Depth, -1
	if e.re == nil && e.depth > 0 && e.depth < int64(len(e.lit)) {
		return e, "depth", fmt.Sprintf("depth %d is shorter than the pattern (%d bytes): it can never match", e.depth, len(e.lit))
	}
	if pc.Distance != nil || pc.Within != nil {
		e.rel = true
		switch prev := j - 1; {
		case j == 0:
			return e, "distance", "distance/within are relative to the previous entry; the first entry has none"
		case pc.Offset != 0 || pc.Depth != 0:
			return e, "offset", "offset/depth cannot be combined with distance/within (the entry is placed relative to the previous one)"
		case all[prev].Regex != "" && pc.Regex == "":
			return e, "distance", "a literal cannot be placed relative to a regex entry (regexes run after the literal scan); make this entry a regex too"
		case e.dirs != 1<<ToServer && e.dirs != 1<<ToClient, dirOf(all[prev].Dir) != dirOf(pc.Dir):
			return e, "dir", "distance/within need this entry and the previous one in the same single direction"
		}
		if pc.Distance != nil {
			e.distance = *pc.Distance
		}
		if pc.Within != nil {
			e.within = *pc.Within
		}
		if e.distance < 0 || (pc.Within != nil && e.within < 0) {
			return e, "distance", "distance and within must not be negative"
		}
		if e.re == nil && pc.Within != nil && e.within < int64(len(e.lit)) {
			return e, "within", fmt.Sprintf("within %d is shorter than the pattern (%d bytes): it can never match", e.within, len(e.lit))
		}
	}
	if e.re != nil && e.lit == nil && e.depth == 0 && e.within < 0 {
		return e, "regex", fmt.Sprintf("regex %q has no literal of %d+ bytes to prefilter on; bound it with depth (or within)", pc.Regex, minPrefilter)
	}
	return e, "", ""
}

func dirOf(s string) string {
	if s == "" {
		return "to_server"
	}
	return s
}

// parseHex reads a byte-exact pattern written as hex digits, blanks
// allowed between bytes: "de ad be ef" or "deadbeef".
func parseHex(s string) ([]byte, error) {
	compact := strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, s)
	if compact == "" {
		return nil, fmt.Errorf("hex %q has no bytes", s)
	}
	if len(compact)%2 != 0 {
		return nil, fmt.Errorf("hex %q has an odd number of digits", s)
	}
	b, err := hex.DecodeString(compact)
	if err != nil {
		return nil, fmt.Errorf("hex %q: not hex digits (write bytes like \"de ad be ef\")", s)
	}
	return b, nil
}

// prefilter finds a literal every match of the regex contains, so the
// regex runs only on data where the automaton saw it.
func prefilter(expr string) ([]byte, bool) {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil, false
	}
	b, fold := requiredLiteral(re.Simplify())
	if len(b) < minPrefilter {
		return nil, false
	}
	return b, fold
}

// requiredLiteral returns the longest usable literal that every match of
// re contains, as far as a simple walk can tell.
func requiredLiteral(re *syntax.Regexp) ([]byte, bool) {
	switch re.Op {
	case syntax.OpLiteral:
		fold := re.Flags&syntax.FoldCase != 0
		return usable(re.Rune, fold), fold
	case syntax.OpCapture, syntax.OpPlus:
		return requiredLiteral(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return requiredLiteral(re.Sub[0])
		}
	case syntax.OpConcat:
		var best []byte
		var fold bool
		for _, s := range re.Sub {
			if b, f := requiredLiteral(s); len(b) > len(best) {
				best, fold = b, f
			}
		}
		return best, fold
	}
	return nil, false
}

// usable turns a literal into automaton bytes. Folded literals fold ASCII
// only in the automaton, but 'k' and 's' also fold to non-ASCII runes
// (U+212A, U+017F) under Go's rules, as do non-ASCII letters: such a
// literal is cut there and its longest safe piece kept.
func usable(runes []rune, fold bool) []byte {
	if !fold {
		return []byte(string(runes))
	}
	var best []rune
	start := 0
	for i := 0; i <= len(runes); i++ {
		if i == len(runes) || strings.ContainsRune("kKsS", runes[i]) || runes[i] >= utf8.RuneSelf {
			if i-start > len(best) {
				best = runes[start:i]
			}
			start = i + 1
		}
	}
	return []byte(string(best))
}

// payloadIndex holds every payload literal of the policy in one automaton
// per direction. Global entry IDs number the entries of all payload rules
// in file order; refs maps an automaton pattern to the entries using it.
type payloadIndex struct {
	ac   [2]*ahocorasick.Matcher
	refs [2][][]int32
	n    int32
	// start lists, per direction, the bytes that move the automaton off
	// its start state, when there are at most maxSkipBytes of them: then
	// the Inspector skips to the next such byte with a vectorised
	// search instead of stepping through bytes that cannot begin a match.
	start [2][]byte
}

// maxSkipBytes bounds the start bytes worth searching for one by one.
const maxSkipBytes = 4

func (p *Policy) buildPayloadIndex() error {
	type litKey struct {
		s      string
		nocase bool
	}
	var ids [2]map[litKey]int
	var pats [2][][]byte
	var nocase [2][]bool
	for ri := range p.rules {
		pr := p.rules[ri].payload
		if pr == nil {
			continue
		}
		pr.g0 = p.pay.n
		for k := range pr.entries {
			e := &pr.entries[k]
			g := p.pay.n + int32(k)
			if e.lit == nil {
				continue
			}
			for d := range 2 {
				if e.dirs&(1<<d) == 0 {
					continue
				}
				if ids[d] == nil {
					ids[d] = make(map[litKey]int)
				}
				lk := litKey{string(e.lit), e.nocase}
				id, ok := ids[d][lk]
				if !ok {
					id = len(pats[d])
					ids[d][lk] = id
					pats[d] = append(pats[d], e.lit)
					nocase[d] = append(nocase[d], e.nocase)
					p.pay.refs[d] = append(p.pay.refs[d], nil)
				}
				p.pay.refs[d][id] = append(p.pay.refs[d][id], g)
			}
		}
		p.pay.n += int32(len(pr.entries))
	}
	for d := range 2 {
		if len(pats[d]) == 0 {
			continue
		}
		m, err := ahocorasick.Build(pats[d], nocase[d])
		if err != nil {
			return fmt.Errorf("payload patterns: %w", err)
		}
		p.pay.ac[d] = m
		p.pay.start[d] = startBytes(m)
	}
	return nil
}

// startBytes returns the bytes that take m off its start state, nil when
// there are more than maxSkipBytes. It asks the automaton itself, one
// byte at a time, so it holds for whatever tables m uses.
func startBytes(m *ahocorasick.Matcher) []byte {
	var out []byte
	hit := func(int, int) bool { return true }
	for c := range 256 {
		b := [1]byte{byte(c)}
		if m.Scan(0, b[:], hit) != 0 {
			if len(out) == maxSkipBytes {
				return nil
			}
			out = append(out, byte(c))
		}
	}
	return out
}
