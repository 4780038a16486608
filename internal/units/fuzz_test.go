package units

import (
	"strconv"
	"strings"
	"testing"
)

// FuzzParseSize: an accepted size is never negative nor above the 1<<62
// cap, and it prints back (String) as text that parses to the same size,
// which is what a config dump relies on.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"65536", "8MiB", "1GB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			if n != 0 {
				t.Fatalf("ParseSize(%q): %d with error %v", s, n, err)
			}
			return
		}
		if n < 0 || n > 1<<62 {
			t.Fatalf("ParseSize(%q) = %d, outside [0, 1<<62]", s, n)
		}
		back, err := ParseSize(n.String())
		if err != nil || back != n {
			t.Fatalf("ParseSize(%q) = %d, printed %q, parsed back as %d, %v", s, n, n.String(), back, err)
		}
	})
}

// FuzzParseDuration: an accepted duration is never negative (a wrapped
// "5d" count would be), a whole-days input is exactly that many days, and
// String's output parses back to the same duration.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"500ms", "1h30m", "5d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			if d != 0 {
				t.Fatalf("ParseDuration(%q): %v with error %v", s, d, err)
			}
			return
		}
		if d < 0 {
			t.Fatalf("ParseDuration(%q) = %v, negative", s, d)
		}
		if days, ok := strings.CutSuffix(s, "d"); ok {
			if n, err := strconv.ParseInt(days, 10, 64); err == nil && (d%day != 0 || int64(d/day) != n) {
				t.Fatalf("ParseDuration(%q) = %v, not %d days", s, d, n)
			}
		}
		back, err := ParseDuration(Duration(d).String())
		if err != nil || back != d {
			t.Fatalf("ParseDuration(%q) = %v, printed %q, parsed back as %v, %v", s, d, Duration(d).String(), back, err)
		}
	})
}
