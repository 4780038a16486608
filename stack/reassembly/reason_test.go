package reassembly

import (
	"regexp"
	"testing"
)

// TestNames checks every reason and result has a distinct snake_case
// name, fit for a metric label.
func TestNames(t *testing.T) {
	snake := regexp.MustCompile(`^[a-z]+(_[a-z]+)*$`)
	seen := map[string]bool{}
	for r := range NumReasons {
		n := r.String()
		if !snake.MatchString(n) || seen[n] {
			t.Errorf("reason %d: name %q not snake_case or not unique", r, n)
		}
		seen[n] = true
	}
	if got := NumReasons.String(); got != "unknown" {
		t.Errorf("out of range reason: got %q; want unknown", got)
	}
	for _, r := range []Result{Dropped, Held, Complete} {
		if n := r.String(); !snake.MatchString(n) || seen[n] {
			t.Errorf("result %d: name %q not snake_case or not unique", r, n)
		}
	}
	if got := Result(9).String(); got != "unknown" {
		t.Errorf("out of range result: got %q; want unknown", got)
	}
}
