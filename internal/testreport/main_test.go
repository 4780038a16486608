package main

import (
	"encoding/json"
	"io"
	"reflect"
	"strings"
	"testing"
)

// stream builds a go test -json stream from action, package, test, output
// quadruples.
func stream(t *testing.T, evs ...[4]string) string {
	t.Helper()
	var b strings.Builder
	for _, e := range evs {
		line, err := json.Marshal(event{Action: e[0], Package: e[1], Test: e[2], Output: e[3]})
		if err != nil {
			t.Fatal(err)
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	return b.String()
}

const pa, pb = "example.com/a", "example.com/b"

// passingA: package a, one test passing and one skipping.
func passingA(t *testing.T) string {
	return stream(t,
		[4]string{"start", pa, "", ""},
		[4]string{"run", pa, "TestOK", ""},
		[4]string{"output", pa, "TestOK", "=== RUN   TestOK\n"},
		[4]string{"output", pa, "TestOK", "    a_test.go:5: chatter\n"},
		[4]string{"output", pa, "TestOK", "--- PASS: TestOK (0.00s)\n"},
		[4]string{"pass", pa, "TestOK", ""},
		[4]string{"run", pa, "TestGuard", ""},
		[4]string{"output", pa, "TestGuard", "=== RUN   TestGuard\n"},
		[4]string{"output", pa, "TestGuard", "    a_test.go:9: skipped under -race\n"},
		[4]string{"output", pa, "TestGuard", "--- SKIP: TestGuard (0.00s)\n"},
		[4]string{"skip", pa, "TestGuard", ""},
		[4]string{"output", pa, "", "PASS\n"},
		[4]string{"output", pa, "", "ok  \texample.com/a\t0.01s\n"},
		[4]string{"pass", pa, "", ""},
	)
}

// failingB: package b, a subtest failing, then a crash-free package FAIL.
func failingB(t *testing.T) string {
	return stream(t,
		[4]string{"start", pb, "", ""},
		[4]string{"run", pb, "TestBad", ""},
		[4]string{"output", pb, "TestBad", "=== RUN   TestBad\n"},
		[4]string{"run", pb, "TestBad/case", ""},
		[4]string{"output", pb, "TestBad/case", "=== RUN   TestBad/case\n"},
		[4]string{"output", pb, "TestBad/case", "    b_test.go:3: got 1, want 2\n"},
		[4]string{"output", pb, "TestBad/case", "    --- FAIL: TestBad/case (0.00s)\n"},
		[4]string{"fail", pb, "TestBad/case", ""},
		[4]string{"output", pb, "TestBad", "--- FAIL: TestBad (0.00s)\n"},
		[4]string{"fail", pb, "TestBad", ""},
		[4]string{"output", pb, "", "FAIL\n"},
		[4]string{"output", pb, "", "FAIL\texample.com/b\t0.01s\n"},
		[4]string{"fail", pb, "", ""},
	)
}

func TestRender(t *testing.T) {
	for _, c := range []struct {
		name    string
		in      string
		verbose bool
		want    string
		ok      bool
	}{
		{"pass", passingA(t), false, "ok  \texample.com/a\t0.01s\n", true},
		{"pass verbose", passingA(t), true,
			"=== RUN   TestOK\n--- PASS: TestOK (0.00s)\n=== RUN   TestGuard\n--- SKIP: TestGuard (0.00s)\nok  \texample.com/a\t0.01s\n", true},
		{"fail", failingB(t), false,
			"    b_test.go:3: got 1, want 2\n    --- FAIL: TestBad/case (0.00s)\n--- FAIL: TestBad (0.00s)\nFAIL\nFAIL\texample.com/b\t0.01s\n", false},
		{"no test files", stream(t,
			[4]string{"start", pa, "", ""},
			[4]string{"output", pa, "", "?   \texample.com/a\t[no test files]\n"},
			[4]string{"skip", pa, "", ""},
		), false, "?   \texample.com/a\t[no test files]\n", true},
		{"build failure", stream(t,
			[4]string{"build-output", "", "", "# example.com/a\n"},
			[4]string{"build-output", "", "", "a.go:1:1: syntax error\n"},
			[4]string{"start", pa, "", ""},
			[4]string{"output", pa, "", "FAIL\texample.com/a [build failed]\n"},
			[4]string{"fail", pa, "", ""},
		), false, "# example.com/a\na.go:1:1: syntax error\nFAIL\texample.com/a [build failed]\n", false},
		{"panic while a test runs", stream(t,
			[4]string{"run", pa, "TestBoom", ""},
			[4]string{"output", pa, "TestBoom", "=== RUN   TestBoom\n"},
			[4]string{"output", pa, "TestBoom", "panic: test timed out after 1s\n"},
			[4]string{"output", pa, "", "FAIL\texample.com/a\t1.00s\n"},
			[4]string{"fail", pa, "", ""},
		), false, "panic: test timed out after 1s\nFAIL\texample.com/a\t1.00s\n", false},
		{"cut short", stream(t,
			[4]string{"run", pa, "TestHang", ""},
			[4]string{"output", pa, "TestHang", "    a_test.go:1: waiting\n"},
		), false, "    a_test.go:1: waiting\nFAIL\texample.com/a\t(no result in the stream)\n", false},
		{"not JSON", "go: cannot find main module\n", false, "go: cannot find main module\n", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out strings.Builder
			ok := render(&out, strings.NewReader(c.in), c.verbose)
			if got := out.String(); got != c.want {
				t.Errorf("got\n%s\nwant\n%s", got, c.want)
			}
			if ok != c.ok {
				t.Errorf("got ok %v, want %v", ok, c.ok)
			}
		})
	}
}

func TestFindSkips(t *testing.T) {
	guardPasses := stream(t,
		[4]string{"run", pa, "TestGuard", ""},
		[4]string{"output", pa, "TestGuard", "--- PASS: TestGuard (0.50s)\n"},
		[4]string{"pass", pa, "TestGuard", ""},
	)
	fuzzSeedSkips := stream(t,
		[4]string{"run", pb, "FuzzX", ""},
		[4]string{"run", pb, "FuzzX/seed", ""},
		[4]string{"output", pb, "FuzzX/seed", "=== RUN   FuzzX/seed\n"},
		[4]string{"output", pb, "FuzzX/seed", "    --- SKIP: FuzzX/seed (0.00s)\n"},
		[4]string{"skip", pb, "FuzzX/seed", ""},
		[4]string{"pass", pb, "FuzzX", ""},
	)
	guard := skipped{pa, "TestGuard", []string{"a_test.go:9: skipped under -race"}}
	seed := skipped{pb, "FuzzX/seed", nil}
	for _, c := range []struct {
		name    string
		streams []string
		want    []skipped
	}{
		{"skipped in the only run", []string{passingA(t)}, []skipped{guard}},
		{"skipped in one run, passed in another", []string{passingA(t), guardPasses}, nil},
		{"order of runs does not matter", []string{guardPasses, passingA(t)}, nil},
		{"a subtest skips, its parent passes", []string{fuzzSeedSkips, passingA(t)}, []skipped{guard, seed}},
		{"nothing skipped", []string{failingB(t)}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			var rs []io.Reader
			for _, s := range c.streams {
				rs = append(rs, strings.NewReader(s))
			}
			if got := findSkips(rs...); !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestReportSkips(t *testing.T) {
	skips := []skipped{{pa, "TestNFT", []string{"x_test.go:3: nft not installed"}}}
	for _, c := range []struct {
		name     string
		skips    []skipped
		ci       bool
		ok       bool
		lastLine string
	}{
		{"none under CI", nil, true, true, ""},
		{"none outside CI", nil, false, true, ""},
		{"some under CI", skips, true, false, "FAIL"},
		{"some outside CI", skips, false, true, "PASS"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out strings.Builder
			if ok := reportSkips(&out, c.skips, c.ci); ok != c.ok {
				t.Errorf("got ok %v, want %v", ok, c.ok)
			}
			got := out.String()
			if c.skips == nil {
				if got != "" {
					t.Errorf("got %q, want no output: go test's closing lines must stay last", got)
				}
				return
			}
			lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
			if last := lines[len(lines)-1]; last != c.lastLine {
				t.Errorf("got last line %q, want %q", last, c.lastLine)
			}
			for _, want := range []string{"--- SKIP: TestNFT (example.com/a)\n", "    x_test.go:3: nft not installed\n"} {
				if !strings.Contains(got, want) {
					t.Errorf("got\n%s\nwant it to contain %q", got, want)
				}
			}
		})
	}
}
