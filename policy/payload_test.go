package policy

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

func i64(v int64) *int64 { return &v }

// feedAll feeds chunks to a fresh inspector for rule list rules and
// returns the index of the chunk that hit (-1 none) and the hit.
func feedAll(t *testing.T, rules []RuleConfig, dirs []StreamDir, chunks ...string) (int, Hit) {
	t.Helper()
	p := payloadPolicy(t, 0, rules...)
	in := inspectorFor(t, p, tcpFlow)
	for i, c := range chunks {
		d := ToServer
		if dirs != nil {
			d = dirs[i]
		}
		if h, ok := in.Feed(d, []byte(c)); ok {
			return i, h
		}
	}
	return -1, Hit{}
}

func TestPayloadEntries(t *testing.T) {
	cases := []struct {
		name    string
		entries []PayloadConfig
		chunks  []string
		want    int // chunk index that hits, -1 none
	}{
		{"hex-spaced", []PayloadConfig{{Hex: "de ad be ef"}}, []string{"xx\xde\xad", "\xbe\xefyy"}, 1},
		{"hex-compact", []PayloadConfig{{Hex: "DEADBEEF"}}, []string{"\xde\xad\xbe\xef"}, 0},
		{"hex-byte-exact", []PayloadConfig{{Hex: "41 42"}}, []string{"ab", "aB", "Ab"}, -1},
		{"offset-too-early", []PayloadConfig{{Contains: "abc", Offset: 3}}, []string{"abcabc"}, 0},
		{"offset-miss", []PayloadConfig{{Contains: "abc", Offset: 3}}, []string{"abcab"}, -1},
		{"depth-inside", []PayloadConfig{{Contains: "abc", Depth: 5}}, []string{"xx", "abc"}, 1},
		{"depth-past", []PayloadConfig{{Contains: "abc", Depth: 5}}, []string{"xxx", "abc"}, -1},
		{"offset-depth-window", []PayloadConfig{{Contains: "GET", Offset: 0, Depth: 3}}, []string{" GET"}, -1},
		{"and-both-needed", []PayloadConfig{{Contains: "user"}, {Contains: "pass"}}, []string{"pass", "...", "user"}, 2},
		{"and-one-missing", []PayloadConfig{{Contains: "user"}, {Contains: "pass"}}, []string{"user", "usr pas"}, -1},
		{"distance-ok", []PayloadConfig{{Contains: "AB"}, {Contains: "CD", Distance: i64(2)}}, []string{"AB..CD"}, 0},
		{"distance-short", []PayloadConfig{{Contains: "AB"}, {Contains: "CD", Distance: i64(3)}}, []string{"AB..CD"}, -1},
		{"within-ok", []PayloadConfig{{Contains: "AB"}, {Contains: "CD", Within: i64(4)}}, []string{"AB", "..CD"}, 1},
		{"within-far", []PayloadConfig{{Contains: "AB"}, {Contains: "CD", Within: i64(4)}}, []string{"AB...CD"}, -1},
		{"within-later-anchor", []PayloadConfig{{Contains: "AB"}, {Contains: "CD", Within: i64(3)}}, []string{"AB.......AB.CD"}, 0},
		{"distance-within", []PayloadConfig{{Contains: "AB"}, {Contains: "CD", Distance: i64(1), Within: i64(3)}}, []string{"AB.CD"}, 0},
		{"distance-within-early", []PayloadConfig{{Contains: "AB"}, {Contains: "CD", Distance: i64(1), Within: i64(3)}}, []string{"ABCD"}, -1},
		{"relative-before-anchor", []PayloadConfig{{Contains: "AB"}, {Contains: "CD", Within: i64(10)}}, []string{"CD AB"}, -1},
		{"regex-prefiltered", []PayloadConfig{{Regex: `union\s+select`, NoCase: true}}, []string{"id=1 UNION   SELECT *"}, 0},
		{"regex-prefilter-no-match", []PayloadConfig{{Regex: `union\s+select`}}, []string{"union all", "select"}, -1},
		{"regex-depth-no-literal", []PayloadConfig{{Regex: `^\d{3} `, Depth: 8}}, []string{"220 smtp"}, 0},
		{"regex-depth-bounded", []PayloadConfig{{Regex: `\d{3} `, Depth: 4}}, []string{"xx220 "}, -1},
		{"regex-relative", []PayloadConfig{{Contains: "Host: "}, {Regex: `^[a-z]+\.evil`, Within: i64(20)}}, []string{"GET / HTTP/1.1\r\nHost: ", "abc.evil\r\n"}, 1},
		{"regex-relative-then-regex", []PayloadConfig{{Regex: `abb+c`}, {Regex: `^x+y`, Within: i64(5)}}, []string{"zzabbbcxxy"}, 0},
		{"regex-kelvin-folds", []PayloadConfig{{Regex: `token`, NoCase: true}}, []string{"TO\u212aEN"}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, h := feedAll(t, []RuleConfig{{Name: "r", Payload: tc.entries, Action: "drop"}}, nil, tc.chunks...)
			if got != tc.want {
				t.Fatalf("hit at chunk %d (%+v), want %d", got, h, tc.want)
			}
			if got >= 0 && (h.Field != FieldPayload || h.Value == "" || h.Value != h.Pattern) {
				t.Fatalf("hit %+v lacks the deciding pattern", h)
			}
		})
	}
}

func TestPayloadDirs(t *testing.T) {
	rules := []RuleConfig{{Name: "r", Payload: []PayloadConfig{{Contains: "USER", Dir: "to_server"}, {Contains: "230 ", Dir: "to_client"}}, Action: "drop"}}
	if got, _ := feedAll(t, rules, []StreamDir{ToServer, ToClient}, "USER x", "230 ok"); got != 1 {
		t.Fatalf("AND across directions: hit at %d", got)
	}
	if got, _ := feedAll(t, rules, []StreamDir{ToClient, ToServer}, "USER x", "230 ok"); got != -1 {
		t.Fatalf("patterns seen in the wrong directions hit at %d", got)
	}
	// offset counts per direction.
	rules = []RuleConfig{{Name: "r", Payload: []PayloadConfig{{Contains: "ab", Offset: 2, Depth: 2, Dir: "both"}}, Action: "drop"}}
	if got, _ := feedAll(t, rules, []StreamDir{ToServer, ToClient}, "xxxx", "..ab"); got != 1 {
		t.Fatalf("offset in to_client: hit at %d", got)
	}
}

func TestPayloadCompileErrors(t *testing.T) {
	cases := []struct {
		e    []PayloadConfig
		key  string
		want string
	}{
		{[]PayloadConfig{{Hex: "abc"}}, "payload.0.hex", "odd number"},
		{[]PayloadConfig{{Hex: "zz"}}, "payload.0.hex", "not hex"},
		{[]PayloadConfig{{Hex: "aa", NoCase: true}}, "payload.0.nocase", "byte-exact"},
		{[]PayloadConfig{{Contains: "a", Hex: "61"}}, "payload.0.contains", "only one"},
		{[]PayloadConfig{{Regex: "("}}, "payload.0.regex", "invalid regex"},
		{[]PayloadConfig{{Regex: `\d+`}}, "payload.0.regex", "no literal"},
		{[]PayloadConfig{{Contains: "a", Distance: i64(1)}}, "payload.0.distance", "first entry"},
		{[]PayloadConfig{{Contains: "a"}, {Contains: "b", Within: i64(1), Offset: 2}}, "payload.1.offset", "cannot be combined"},
		{[]PayloadConfig{{Contains: "a"}, {Contains: "bcd", Within: i64(2)}}, "payload.1.within", "shorter than the pattern"},
		{[]PayloadConfig{{Contains: "abc", Depth: 2}}, "payload.0.depth", "shorter than the pattern"},
		{[]PayloadConfig{{Contains: "a"}, {Contains: "b", Within: i64(4), Dir: "to_client"}}, "payload.1.dir", "same single direction"},
		{[]PayloadConfig{{Regex: "ab+"}, {Contains: "b", Within: i64(4)}}, "payload.1.distance", "relative to a regex"},
		{[]PayloadConfig{{Contains: "a", Offset: -1}}, "payload.0.offset", "negative"},
	}
	for _, tc := range cases {
		_, err := Compile(Config{Defaults: Defaults{Policy: "allow"}, Rules: []RuleConfig{{Name: "r", Payload: tc.e, Action: "drop"}}})
		if err == nil || !strings.Contains(err.Error(), "rule.0."+tc.key) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.key, err, tc.want)
		}
	}
}

func TestPrefilter(t *testing.T) {
	for _, tc := range []struct {
		expr string
		lit  string
		fold bool
	}{
		{`union\s+select`, "select", false},
		{`(?i)union\s+select`, "union", true}, // "select" has an s: cut at it
		{`abc`, "abc", false},
		{`(?i)ask`, "", true}, // 'a' alone is too short
		{`a|b`, "", false},
		{`x(foo)+y`, "foo", false},
		{`\d+`, "", false},
	} {
		lit, fold := prefilter(tc.expr)
		if !strings.EqualFold(string(lit), tc.lit) || (lit != nil && fold != tc.fold) {
			t.Errorf("prefilter(%q) = %q %v, want %q %v", tc.expr, lit, fold, tc.lit, tc.fold)
		}
	}
}

// TestInspectorMatchesOracle cross-checks the automaton-based Inspector
// against the per-pattern KMP matcher it replaced, on random single-entry
// rules (where both define the same hits) and random chunked streams.
func TestInspectorMatchesOracle(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for iter := range 300 {
		n := 1 + r.IntN(12)
		var rules []RuleConfig
		for i := range n {
			pat := randText(r, 1+r.IntN(4), "abcAB")
			dir := []string{"to_server", "to_client", "both"}[r.IntN(3)]
			rules = append(rules, RuleConfig{Name: fmt.Sprintf("r%d", i), Payload: []PayloadConfig{{Contains: pat, NoCase: r.IntN(2) == 0, Dir: dir}}, Action: "drop"})
		}
		var chunks [][]byte
		var dirs []StreamDir
		for range 1 + r.IntN(8) {
			chunks = append(chunks, []byte(randText(r, r.IntN(10), "abcABx")))
			dirs = append(dirs, StreamDir(r.IntN(2)))
		}
		checkAgainstOracle(t, fmt.Sprint(iter), rules, chunks, dirs)
	}
}

func randText(r *rand.Rand, n int, alphabet string) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(b)
}

// checkAgainstOracle feeds chunks through the Inspector and through one
// KMP pattern per rule; both must report the same first hit.
func checkAgainstOracle(t *testing.T, name string, rules []RuleConfig, chunks [][]byte, dirs []StreamDir) {
	t.Helper()
	p := payloadPolicy(t, 0, rules...)
	in := inspectorFor(t, p, tcpFlow)
	pats := make([]pattern, len(rules))
	states := make([][2]int32, len(rules))
	for i, rc := range rules {
		pt, perr := compilePattern(rc.Payload[0])
		if perr != nil {
			t.Fatal(perr.msg)
		}
		pats[i] = pt
	}
	for c, data := range chunks {
		d := dirs[c]
		want := -1
		for i := range pats {
			if pats[i].dirs&(1<<d) == 0 {
				continue
			}
			s, ok := pats[i].scan(states[i][d], data)
			states[i][d] = s
			if ok && want < 0 {
				want = i
			}
		}
		h, ok := in.Feed(d, data)
		got := -1
		if ok {
			got = h.Rule
		}
		if got != want {
			t.Fatalf("%s: chunk %d dir %d %q: inspector rule %d, oracle %d (rules %+v)", name, c, d, data, got, want, rules)
		}
		if ok {
			return
		}
	}
}

// FuzzInspectorOracle cross-checks the Inspector against the KMP oracle:
// pats holds up to 16 patterns separated by '|', flags a byte per pattern
// (bit 0 nocase, bits 1-2 the direction), data is cut into chunks at the
// lengths in cuts (high bit: direction to_client).
func FuzzInspectorOracle(f *testing.F) {
	f.Add([]byte("abc|bc|ABC"), []byte{1, 4, 0}, []byte("xxABcabcbc"), []byte{3, 0x82, 5})
	f.Add([]byte("aa|aaa|a"), []byte{0, 2, 5}, []byte("aaaaaa"), []byte{1, 1, 0x81, 2})
	f.Add([]byte("${jndi:|/etc/passwd"), []byte{1, 0}, []byte("GET /${JNDI:ldap://x"), []byte{9, 9})
	f.Fuzz(func(t *testing.T, pats, flags, data, cuts []byte) {
		if len(data) > 1<<12 || len(cuts) > 64 {
			t.Skip()
		}
		var rules []RuleConfig
		for i, s := range strings.Split(string(pats), "|") {
			if s == "" || len(s) > 32 || i >= 16 {
				continue
			}
			var fl byte
			if i < len(flags) {
				fl = flags[i]
			}
			dir := []string{"to_server", "to_client", "both", "both"}[fl>>1&3]
			rules = append(rules, RuleConfig{Name: fmt.Sprintf("r%d", i), Payload: []PayloadConfig{{Contains: s, NoCase: fl&1 != 0, Dir: dir}}, Action: "drop"})
		}
		if len(rules) == 0 {
			// No usable pattern, so no payload rule: the flow must not be
			// armed, or every packet would pay for an empty inspector.
			p := payloadPolicy(t, 0)
			if v := p.Decide(tcpFlow); v.Armed || p.NewInspector(tcpFlow, v) != nil {
				t.Fatalf("no payload rule, yet armed: %v", v)
			}
			return
		}
		var chunks [][]byte
		var dirs []StreamDir
		for i := 0; len(data) > 0; i++ {
			n, d := len(data), ToServer
			if i < len(cuts) {
				n, d = min(int(cuts[i]&0x7f), len(data)), StreamDir(cuts[i]>>7)
			}
			chunks = append(chunks, data[:n])
			dirs = append(dirs, d)
			data = data[n:]
		}
		checkAgainstOracle(t, "fuzz", rules, chunks, dirs)
	})
}

func TestFeedAllocsManyRules(t *testing.T) {
	rules := benchRules(200)
	p := payloadPolicy(t, 0, rules...)
	in := inspectorFor(t, p, tcpFlow)
	data := benchStream(rand.New(rand.NewPCG(3, 4)), 1500)
	if n := testing.AllocsPerRun(200, func() {
		if _, ok := in.Feed(ToServer, data); ok {
			t.Fatal("hit")
		}
	}); n != 0 {
		t.Errorf("Feed allocates %v per call", n)
	}
}

// benchRules is n payload rules with one random 6-16 byte literal each,
// every fourth nocase, in the alphabet of benchStream so that partial
// matches happen, but with a '#' no stream byte has, so none completes.
func benchRules(n int) []RuleConfig {
	r := rand.New(rand.NewPCG(7, uint64(n)))
	rules := make([]RuleConfig, n)
	for i := range rules {
		lit := randText(r, 5+r.IntN(11), "abcdefghijklmnopqrstuvwxyz/.=-") + "#"
		rules[i] = RuleConfig{Name: fmt.Sprintf("p%d", i), Proto: List{"tcp"}, Payload: []PayloadConfig{{Contains: lit, NoCase: i%4 == 0}}, Action: "drop"}
	}
	return rules
}

// benchStream is HTTP-like text: request lines and headers with random
// words.
func benchStream(r *rand.Rand, n int) []byte {
	var b strings.Builder
	for b.Len() < n {
		fmt.Fprintf(&b, "GET /%s/%s.html?%s=%s HTTP/1.1\r\nHost: www.%s.example\r\nUser-Agent: Mozilla/5.0 (%s)\r\nAccept: */*\r\n\r\n",
			randText(r, 6, "abcdefghijklmnopqrstuvwxyz"), randText(r, 8, "abcdefghijklmnop"), randText(r, 3, "abcxyz"),
			randText(r, 10, "0123456789abcdef"), randText(r, 7, "abcdefghijklmnopqrstuvwxyz"), randText(r, 12, "abcdefghijklmnopqrstuvwxyz ;"))
	}
	return []byte(b.String()[:n])
}

// BenchmarkPayloadScan feeds 1500-byte segments (and 32 KiB relay reads)
// of HTTP-like text through an Inspector with n armed payload rules (one
// literal each), none of which completes: the steady-state cost of
// inspecting a flow.
func BenchmarkPayloadScan(b *testing.B) {
	for _, n := range []int{10, 1000} {
		for _, size := range []int{1500, 32 << 10} {
			name := fmt.Sprintf("patterns=%d", n)
			if size != 1500 {
				name += fmt.Sprintf(",chunk=%dKiB", size>>10)
			}
			b.Run(name, func(b *testing.B) { benchPayloadScan(b, n, size) })
		}
	}
}

func benchPayloadScan(b *testing.B, n, size int) {
	p := payloadPolicy(b, 0, benchRules(n)...)
	in := p.NewInspector(tcpFlow, p.Decide(tcpFlow))
	r := rand.New(rand.NewPCG(5, 6))
	segs := make([][]byte, 64)
	for i := range segs {
		segs[i] = benchStream(r, size)
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, ok := in.Feed(ToServer, segs[i&63]); ok {
			b.Fatal("hit")
		}
		i++
	}
}

// BenchmarkFeedOneRule is the shipped configs' case: one nocase literal
// whose first byte is rare in the stream, so skipScan runs at the speed
// of bytes.IndexByte.
func BenchmarkFeedOneRule(b *testing.B) {
	p := payloadPolicy(b, 0, RuleConfig{Name: "bj", Proto: List{"tcp"}, Payload: []PayloadConfig{{Contains: "${jndi:", NoCase: true}}, Action: "reject"})
	in := p.NewInspector(tcpFlow, p.Decide(tcpFlow))
	data := benchStream(rand.New(rand.NewPCG(1, 1)), 16<<10)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := in.Feed(ToServer, data); ok {
			b.Fatal("hit")
		}
	}
}
