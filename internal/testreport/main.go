// Testreport sits between `go test -json` and the reader of make test's
// output. Plain go test says nothing about skipped tests, so a missing tool,
// a missing privilege or a guard that only ever runs under -race silently
// stops testing anything; the JSON stream says which tests skipped and why.
//
// Usage:
//
//	go test -json PKGS | testreport [-v] -save FILE
//	testreport -skips FILE...
//
// The first form prints what plain go test would (one line per package and
// the whole log of each failed test; with -v also the === RUN and --- PASS
// or SKIP lines, as progress for slow suites), keeps the stream in FILE and
// exits 1 when a test or a package failed.
//
// The second form reads the streams of several runs and lists each test that
// skipped in one and ran in none: a guard that skips under -race and passes
// in the run without it did run. Under CI=true any such skip fails, because
// there a skip means the suite was not what it claims; elsewhere (a laptop
// without some tool) skips are only listed. It prints nothing when no test
// skipped, so that go test's own closing lines stay last.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

func main() { os.Exit(run()) }

// run is main with an exit code, so that deferred closes happen first.
func run() int {
	verbose := flag.Bool("v", false, "also print === RUN and --- PASS/SKIP lines as they come")
	save := flag.String("save", "", "write the JSON stream read from stdin to this file")
	skipsMode := flag.Bool("skips", false, "list the tests the saved streams (arguments) skipped")
	flag.Parse()

	if *skipsMode {
		var streams []io.Reader
		for _, name := range flag.Args() {
			f, err := os.Open(name)
			if err != nil {
				fmt.Fprintln(os.Stderr, "testreport:", err)
				return 2
			}
			defer f.Close()
			streams = append(streams, f)
		}
		if !reportSkips(os.Stdout, findSkips(streams...), os.Getenv("CI") == "true") {
			return 1
		}
		return 0
	}

	in := io.Reader(os.Stdin)
	if *save != "" {
		f, err := os.Create(*save)
		if err != nil {
			fmt.Fprintln(os.Stderr, "testreport:", err)
			return 2
		}
		defer f.Close()
		in = io.TeeReader(in, f)
	}
	if !render(os.Stdout, in, *verbose) {
		return 1
	}
	return 0
}

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

// events calls fn for each event of r. A line that is not JSON (a crash
// of go itself, say) becomes an output event of no package, so that it is
// still printed rather than lost.
func events(r io.Reader, fn func(e event)) {
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Action == "" {
			e = event{Action: "output", Output: sc.Text() + "\n"}
		}
		fn(e)
	}
	if err := sc.Err(); err != nil {
		fn(event{Action: "output", Output: "testreport: reading the stream: " + err.Error() + "\n"})
	}
}

// framing reports whether a test's output line is test2json's bookkeeping
// rather than something the test or go test said.
func framing(line string) bool {
	return strings.HasPrefix(strings.TrimSpace(line), "=== ")
}

// pkgLog is what a package printed so far: the output of each test still
// without a result, in the order tests started, and the package's own lines.
type pkgLog struct {
	tests map[string][]string
	order []string
	lines []string
}

func (p *pkgLog) testOutput(test, line string) {
	if _, ok := p.tests[test]; !ok {
		p.order = append(p.order, test)
	}
	p.tests[test] = append(p.tests[test], line)
}

// render prints the stream the way plain go test prints a run over several
// packages, and reports whether everything passed.
func render(w io.Writer, r io.Reader, verbose bool) (ok bool) {
	ok = true
	pkgs := map[string]*pkgLog{}
	pkg := func(name string) *pkgLog {
		p := pkgs[name]
		if p == nil {
			p = &pkgLog{tests: map[string][]string{}}
			pkgs[name] = p
		}
		return p
	}
	printTest := func(p *pkgLog, test string) {
		for _, l := range p.tests[test] {
			if !framing(l) {
				io.WriteString(w, l)
			}
		}
	}
	events(r, func(e event) {
		switch e.Action {
		case "build-output":
			io.WriteString(w, e.Output)
		case "output":
			if e.Package == "" && e.Test == "" {
				io.WriteString(w, e.Output)
				return
			}
			p := pkg(e.Package)
			if e.Test == "" {
				p.lines = append(p.lines, e.Output)
				return
			}
			p.testOutput(e.Test, e.Output)
			// Live progress; a failed test's --- FAIL line comes with its
			// log when the test ends.
			if t := strings.TrimSpace(e.Output); verbose &&
				(strings.HasPrefix(t, "=== RUN") || strings.HasPrefix(t, "--- PASS") || strings.HasPrefix(t, "--- SKIP")) {
				io.WriteString(w, e.Output)
			}
		case "pass", "skip", "fail":
			p := pkg(e.Package)
			if e.Test != "" {
				if e.Action == "fail" {
					ok = false
					printTest(p, e.Test)
				}
				delete(p.tests, e.Test)
				return
			}
			if e.Action == "fail" {
				ok = false
				// Tests still without a result were running when the
				// binary died (a panic, a timeout): their logs say where.
				for _, t := range p.order {
					printTest(p, t)
				}
				for _, l := range p.lines {
					io.WriteString(w, l)
				}
			} else {
				// Passing packages show only go test's summary line
				// ("ok  pkg 1.2s", "?   pkg [no test files]").
				for _, l := range p.lines {
					if strings.HasPrefix(l, "ok") || strings.HasPrefix(l, "?") {
						io.WriteString(w, l)
					}
				}
			}
			delete(pkgs, e.Package)
		}
	})
	// A stream cut short (go test killed) leaves packages without a
	// result: show what they had.
	names := make([]string, 0, len(pkgs))
	for name := range pkgs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		ok = false
		p := pkgs[name]
		for _, t := range p.order {
			printTest(p, t)
		}
		for _, l := range p.lines {
			io.WriteString(w, l)
		}
		fmt.Fprintf(w, "FAIL\t%s\t(no result in the stream)\n", name)
	}
	return ok
}

// skipped is a test that skipped, with what it said when skipping.
type skipped struct {
	Package, Test string
	Reason        []string
}

// findSkips returns the tests that skipped in some stream and passed or
// failed in none, in package and test order.
func findSkips(streams ...io.Reader) []skipped {
	type key struct{ pkg, test string }
	ran := map[key]bool{}
	skips := map[key][]string{}
	for _, r := range streams {
		out := map[key][]string{}
		events(r, func(e event) {
			if e.Test == "" {
				return
			}
			k := key{e.Package, e.Test}
			switch e.Action {
			case "output":
				if t := strings.TrimSpace(e.Output); t != "" && !framing(t) && !strings.HasPrefix(t, "--- SKIP") {
					out[k] = append(out[k], t)
				}
			case "pass", "fail":
				ran[k] = true
				delete(out, k)
			case "skip":
				if _, seen := skips[k]; !seen {
					skips[k] = out[k]
				}
				delete(out, k)
			}
		})
	}
	var list []skipped
	for k, reason := range skips {
		if !ran[k] {
			list = append(list, skipped{k.pkg, k.test, reason})
		}
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].Package != list[j].Package {
			return list[i].Package < list[j].Package
		}
		return list[i].Test < list[j].Test
	})
	return list
}

// reportSkips lists skips in go test's --- SKIP form and reports whether
// they are acceptable: always outside CI, never under it. The last line is
// go test's closing PASS or FAIL.
func reportSkips(w io.Writer, skips []skipped, ci bool) bool {
	if len(skips) == 0 {
		return true
	}
	fmt.Fprintf(w, "\n%d test(s) skipped and ran in no other pass of make test:\n", len(skips))
	for _, s := range skips {
		fmt.Fprintf(w, "--- SKIP: %s (%s)\n", s.Test, s.Package)
		if len(s.Reason) == 0 {
			fmt.Fprintln(w, "    (no reason given)")
		}
		for _, l := range s.Reason {
			fmt.Fprintf(w, "    %s\n", l)
		}
	}
	if ci {
		fmt.Fprintln(w, "CI=true: a skipped test did not test anything; install what it needs or make it run.")
		fmt.Fprintln(w, "FAIL")
		return false
	}
	fmt.Fprintln(w, "Skips are allowed because CI is not \"true\"; under CI=true they fail make test.")
	fmt.Fprintln(w, "PASS")
	return true
}
