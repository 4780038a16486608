package conntrack

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	gcPauseMetric   = "/sched/pauses/total/gc:seconds"
	gcPauseChildEnv = "TUNGATE_GCPAUSE_CHILD_FLOWS"
	gcPausePrefix   = "gcpause:"
)

// TestGCPauseLiveTable measures what a live 1M-flow table adds to the
// garbage collector's stop-the-world pauses. Two child processes run
// side by side, one holding the table and one with an empty heap; the
// parent asks them in turn, many rounds, alternating who goes first, for
// a batch of forced collections, so the host's noise lands on both
// alike. Each child reports the delta of the runtime's pause histogram
// (/sched/pauses/total/gc:seconds, both pauses of every cycle, from the
// stop request to the restart) over its batch. Only numbers are logged:
// pause lengths are the host's as much as ours, so nothing is asserted
// about them.
func TestGCPauseLiveTable(t *testing.T) {
	if v := os.Getenv(gcPauseChildEnv); v != "" {
		// This process is one of the children started below: the test
		// binary re-run with this test alone, so no other test exists
		// only to be the child (and skip everywhere else).
		gcPauseChildMain(t, v)
		return
	}
	if testing.Short() || raceEnabled {
		t.Skip("builds a 1M-flow table; skipped under -short and -race")
	}
	const (
		rounds   = 40
		perRound = 25
	)
	empty := startGCPauseChild(t, 0)
	full := startGCPauseChild(t, 1<<20)
	var hist [2][]uint64
	for r := range rounds {
		for i := range 2 {
			c := [2]*gcPauseChild{empty, full}[(i+r)%2]
			d := c.round(t, perRound)
			w := (i + r) % 2
			if hist[w] == nil {
				hist[w] = make([]uint64, len(d))
			}
			for j, n := range d {
				hist[w][j] += n
			}
		}
	}
	buckets := gcPauseBuckets()
	names := [2]string{"empty heap", "1M flows"}
	var med, p99 [2]float64
	for w := range 2 {
		var n uint64
		for _, c := range hist[w] {
			n += c
		}
		// Every forced cycle stops the world twice.
		if n < 2*rounds*perRound {
			t.Fatalf("%s: %d pauses recorded for %d forced cycles", names[w], n, rounds*perRound)
		}
		med[w] = histQuantile(hist[w], buckets, 0.5)
		p99[w] = histQuantile(hist[w], buckets, 0.99)
		t.Logf("%-10s %d pauses: median %s p99 %s max %s", names[w], n,
			fmtSec(med[w]), fmtSec(p99[w]), fmtSec(histQuantile(hist[w], buckets, 1)))
	}
	// Quantiles are bucket upper bounds; the runtime's buckets are 25%
	// apart at these durations, which bounds the resolution.
	t.Logf("extra pause of a live 1M-flow table: median %+.1f µs, p99 %+.1f µs",
		(med[1]-med[0])*1e6, (p99[1]-p99[0])*1e6)
	if got := full.quit(t); got != 1<<20 {
		t.Fatalf("table child held %d flows", got)
	}
	empty.quit(t)
}

func fmtSec(s float64) string { return time.Duration(s * 1e9).String() }

func gcPauseBuckets() []float64 {
	s := []metrics.Sample{{Name: gcPauseMetric}}
	metrics.Read(s)
	return s[0].Value.Float64Histogram().Buckets
}

// histQuantile is the upper bound of the bucket holding quantile q.
func histQuantile(counts []uint64, buckets []float64, q float64) float64 {
	var total uint64
	for _, c := range counts {
		total += c
	}
	want := uint64(math.Ceil(q * float64(total)))
	var cum uint64
	for i, c := range counts {
		cum += c
		if c > 0 && cum >= want {
			return buckets[i+1]
		}
	}
	return math.NaN()
}

type gcPauseChild struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

func startGCPauseChild(t *testing.T, flows int) *gcPauseChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestGCPauseLiveTable$", "-test.count=1")
	cmd.Env = append(os.Environ(), gcPauseChildEnv+"="+strconv.Itoa(flows))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &gcPauseChild{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	c.out.Buffer(nil, 1<<20)
	t.Cleanup(func() { _ = in.Close(); _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if l := c.line(t); l != "ready" {
		t.Fatalf("child: %q", l)
	}
	return c
}

// line is the child's next protocol line (the test framework's own
// output is skipped).
func (c *gcPauseChild) line(t *testing.T) string {
	t.Helper()
	for c.out.Scan() {
		if l, ok := strings.CutPrefix(c.out.Text(), gcPausePrefix); ok {
			return l
		}
	}
	t.Fatalf("child ended: %v", c.out.Err())
	return ""
}

func (c *gcPauseChild) round(t *testing.T, n int) []uint64 {
	t.Helper()
	fmt.Fprintf(c.in, "gc %d\n", n)
	var d []uint64
	if err := json.Unmarshal([]byte(c.line(t)), &d); err != nil {
		t.Fatal(err)
	}
	return d
}

func (c *gcPauseChild) quit(t *testing.T) int {
	t.Helper()
	fmt.Fprintf(c.in, "quit\n")
	n, err := strconv.Atoi(c.line(t))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// gcPauseChildMain is TestGCPauseLiveTable's child process, holding a
// table of the given number of flows (v) and answering the parent's
// requests on stdin.
func gcPauseChildMain(t *testing.T, v string) {
	flows, err := strconv.Atoi(v)
	if err != nil {
		t.Fatal(err)
	}
	var tab *Table
	if flows > 0 {
		tab, _ = bigTable(t, flows)
	}
	runtime.GC()
	fmt.Printf("%sready\n", gcPausePrefix)
	s := []metrics.Sample{{Name: gcPauseMetric}}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		var n int
		if _, err := fmt.Sscanf(in.Text(), "gc %d", &n); err != nil {
			break
		}
		metrics.Read(s)
		before := append([]uint64(nil), s[0].Value.Float64Histogram().Counts...)
		for range n {
			runtime.GC()
		}
		metrics.Read(s)
		after := s[0].Value.Float64Histogram().Counts
		for i := range before {
			before[i] = after[i] - before[i]
		}
		b, _ := json.Marshal(before)
		fmt.Printf("%s%s\n", gcPausePrefix, b)
	}
	n := 0
	if tab != nil {
		n = tab.Len()
	}
	fmt.Printf("%s%d\n", gcPausePrefix, n)
	runtime.KeepAlive(tab)
}
