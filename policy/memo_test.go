package policy

import (
	"testing"
)

// TestSetMemo: rules naming the same static sets on src, dst and not_*,
// interleaved so the one-entry memo of each side is replaced between
// rules, decide exactly as the rules read.
func TestSetMemo(t *testing.T) {
	p := mustCompile(t, Config{
		Defaults: Defaults{Policy: "drop"},
		Sets: map[string]SetConfig{
			"a": {Type: "cidr", Elements: List{"198.18.1.0/24", "2001:2:0:1::/64"}},
			"b": {Type: "cidr", Elements: List{"198.18.2.0/24", "2001:2:0:2::/64"}},
		},
		Rules: []RuleConfig{
			{Name: "a-to-b", Proto: List{"tcp"}, Src: List{"@a"}, Dst: List{"@b"}, DstPort: List{int64(80)}, Action: "allow"},
			{Name: "b-src-not-a-dst", Proto: List{"tcp"}, Src: List{"@b"}, NotDst: List{"@a"}, DstPort: List{int64(80)}, Action: "reject"},
			{Name: "not-a-src", Proto: List{"tcp"}, NotSrc: List{"@a"}, Dst: List{"@a", "@b"}, DstPort: List{int64(80)}, Action: "allow"},
			{Name: "a-or-b-src", Proto: List{"tcp"}, Src: List{"@b", "@a"}, DstPort: List{int64(80)}, Action: "reject"},
		},
	})
	for _, tc := range []struct {
		src, dst, want string
	}{
		{"198.18.1.5:1000", "198.18.2.5:80", "a-to-b"},
		{"198.18.2.5:1000", "198.18.3.5:80", "b-src-not-a-dst"},
		{"198.18.2.5:1000", "198.18.1.5:80", "not-a-src"},
		{"198.18.3.5:1000", "198.18.1.5:80", "not-a-src"},
		{"198.18.1.5:1000", "198.18.1.6:80", "a-or-b-src"},
		{"198.18.1.5:1000", "198.18.3.5:80", "a-or-b-src"},
		{"198.18.3.5:1000", "198.18.3.6:80", "default"},
		{"[2001:2:0:1::5]:1000", "[2001:2:0:2::5]:80", "a-to-b"},
		{"[2001:2:0:2::5]:1000", "[2001:2:0:1::5]:80", "not-a-src"},
		{"[2001:2:0:1::5]:1000", "[2001:2:0:3::5]:80", "a-or-b-src"},
	} {
		// The same Decide twice: the memo lives in one walk only.
		for range 2 {
			if got := p.RuleNameAt(p.Decide(flow("tcp", tc.src, tc.dst)).Rule); got != tc.want {
				t.Errorf("%s -> %s: decided by %s, want %s", tc.src, tc.dst, got, tc.want)
			}
		}
	}
}
