package bench

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tungate/tungate/internal/config"
)

func TestPercentileAgainstSortedIndex(t *testing.T) {
	if Percentile(nil, 50) != 0 {
		t.Fatal("empty input must give 0")
	}
	r := rand.New(rand.NewPCG(1, 2))
	for n := 1; n < 300; n += 7 {
		s := make([]time.Duration, n)
		for i := range s {
			s[i] = time.Duration(r.IntN(1000))
		}
		sorted := slices.Sorted(slices.Values(s))
		for _, p := range []float64{1, 50, 99, 100} {
			got := Percentile(slices.Clone(s), p)
			// Nearest rank: at least p% of the samples are <= it, and fewer
			// than p% are < it.
			le, lt := 0, 0
			for _, x := range sorted {
				if x <= got {
					le++
				}
				if x < got {
					lt++
				}
			}
			if float64(le) < p/100*float64(n) || float64(lt) >= p/100*float64(n) {
				t.Fatalf("n=%d p=%v: got %v (le %d, lt %d)", n, p, got, le, lt)
			}
		}
	}
	if got := Percentile([]time.Duration{5, 1, 3, 2, 4}, 50); got != 3 {
		t.Fatalf("median of 1..5 = %v", got)
	}
}

func TestParseIperf(t *testing.T) {
	tcp, err := os.ReadFile("testdata/iperf-tcp.json")
	if err != nil {
		t.Fatal(err)
	}
	r, err := ParseIperf(tcp)
	if err != nil {
		t.Fatal(err)
	}
	if r.BitsPerSecond != 22725335503.856747 || r.Seconds != 1.000066 {
		t.Fatalf("tcp: %+v", r)
	}
	udp, err := os.ReadFile("testdata/iperf-udp.json")
	if err != nil {
		t.Fatal(err)
	}
	r, err = ParseIperf(udp)
	if err != nil {
		t.Fatal(err)
	}
	if r.Packets != 201912 || r.Lost != 3819 {
		t.Fatalf("udp: %+v", r)
	}
	if want := float64(201912-3819) / 1.000056; r.DeliveredPPS() != want {
		t.Fatalf("pps %v, want %v", r.DeliveredPPS(), want)
	}
	for _, bad := range []string{
		`{"error":"unable to connect to server: Connection refused"}`,
		`{"end":{}}`,
		`not json`,
		`{"end":{"sum_received":{"seconds":1,"packets":1,"lost_packets":2}}}`,
	} {
		if _, err := ParseIperf([]byte(bad)); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
	if _, err := ParseIperf([]byte(`{"error":"the server is busy running a test"}`)); err == nil || !strings.Contains(err.Error(), "busy") {
		t.Errorf("busy error lost: %v", err)
	}
}

func TestParseProcStat(t *testing.T) {
	line := []byte("4242 (tun (gate) x) S 17 4242 17 0 -1 4194560 1 0 0 0 250 125 0 0 20 0 9 0 100 1000 200 18446744073709551615")
	s, err := ParseProcStat(line)
	if err != nil {
		t.Fatal(err)
	}
	if s.PID != 4242 || s.PPID != 17 || s.CPU != 3.75 {
		t.Fatalf("%+v", s)
	}
	self, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Skip(err)
	}
	if s, err := ParseProcStat(self); err != nil || s.PID != os.Getpid() || s.PPID != os.Getppid() {
		t.Fatalf("own stat: %+v %v", s, err)
	}
	for _, bad := range []string{"", "12 (x", "x (y) S 1", "12 (y) S 1 2 3"} {
		if _, err := ParseProcStat([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestParseStatusAndHostBusy(t *testing.T) {
	m, err := ParseStatus([]byte("Name:\ttungate\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\nThreads:\t9\n"))
	if err != nil || m.RSS != 1<<20 || m.HWM != 2<<20 {
		t.Fatalf("%+v %v", m, err)
	}
	if _, err := ParseStatus([]byte("VmRSS:\t1 MB\nVmHWM:\t1 kB\n")); err == nil {
		t.Error("unit MB accepted")
	}
	if _, err := ParseStatus([]byte("Name:\tkthread\n")); err == nil {
		t.Error("missing fields accepted")
	}
	b, err := ParseHostBusy([]byte("cpu  100 5 50 1000 20 3 2 0 0 0\ncpu0 1 2 3 4 5 6 7 8\n"))
	if err != nil || b != 1.6 {
		t.Fatalf("busy %v %v", b, err)
	}
	if _, err := ParseHostBusy([]byte("intr 1 2 3\n")); err == nil {
		t.Error("no cpu line accepted")
	}
}

func TestBuildRowsAndTable(t *testing.T) {
	metrics := []Metric{{"a", "alpha", "Gbit/s"}, {"b", "beta", "us"}, {"none", "nobody", ""}}
	variants := []string{"kernel", "nftables", "tungate"}
	res := map[string]map[string]float64{
		"kernel":   {"a": 20, "b": 10},
		"nftables": {"a": 10, "b": 0},
		"tungate":  {"a": 2.5, "b": 30},
	}
	rows := BuildRows(metrics, variants, res, nil, "tungate", "nftables")
	if len(rows) != 2 {
		t.Fatalf("rows %d", len(rows))
	}
	if rows[0].Ratio == nil || *rows[0].Ratio != 0.25 {
		t.Fatalf("ratio a %v", rows[0].Ratio)
	}
	if rows[1].Ratio != nil {
		t.Fatal("ratio over zero must be absent")
	}
	var buf bytes.Buffer
	rep := Report{Variants: variants, RatioNum: "tungate", RatioDen: "nftables", Rows: rows}
	if err := FormatTable(&buf, rep); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(buf.String(), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("table:\n%s", buf.String())
	}
	for _, l := range lines {
		if len(l) != len(lines[0]) {
			t.Fatalf("ragged table:\n%s", buf.String())
		}
	}
	for _, want := range []string{"alpha (Gbit/s)", "0.25x", "2.50", "30.0"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, buf.String())
		}
	}
	if !strings.HasSuffix(lines[3], "-") {
		t.Errorf("missing ratio not shown as -: %q", lines[3])
	}
}

// A failed test keeps its row, shows "-[n]" in its column only, and the
// footnote names variant, test and reason.
func TestFailedCellsFootnoted(t *testing.T) {
	metrics := []Metric{{"tcp", "tcp", "Gbit/s"}, {"udp.kpps", "udp", "kpps"}, {"udp.loss", "udp loss", "%"}, {"rtt.p50", "rtt", "us"}}
	variants := []string{"kernel", "tungate", "peer"}
	res := map[string]map[string]float64{
		"kernel":  {"tcp": 20, "rtt.p50": 10},
		"tungate": {"tcp": 2, "rtt.p50": 30},
		"peer":    {"tcp": 3},
	}
	errs := []RunError{
		{Variant: "tungate", Test: "udp", Reason: "iperf3 killed after 25s"},
		{Variant: "peer", Test: "rtt", Reason: "gateway died"},
	}
	rows := BuildRows(metrics, variants, res, errs, "tungate", "kernel")
	if len(rows) != 4 {
		t.Fatalf("rows %d, want the failed udp rows kept", len(rows))
	}
	var buf bytes.Buffer
	rep := Report{Variants: variants, RatioNum: "tungate", RatioDen: "kernel", Rows: rows, Errors: errs}
	if err := FormatTable(&buf, rep); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(buf.String(), "\n"), "\n")
	if len(lines) != 2+4+2 {
		t.Fatalf("table:\n%s", buf.String())
	}
	udp := strings.Fields(lines[3])
	// udp (kpps) | kernel - | tungate -[1] | peer - | ratio -
	if got := udp[len(udp)-4:]; got[0] != "-" || got[1] != "-[1]" || got[2] != "-" {
		t.Errorf("udp row %q", lines[3])
	}
	if !strings.Contains(lines[5], "-[2]") || strings.Count(buf.String(), "-[1]") != 2 {
		t.Errorf("table:\n%s", buf.String())
	}
	if lines[6] != "[1] tungate, udp: iperf3 killed after 25s" || lines[7] != "[2] peer, rtt: gateway died" {
		t.Errorf("footnotes %q", lines[6:])
	}
}

func TestFormatValue(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 0.01234: "0.012", 1.234: "1.23", 12.34: "12.3", 1234.5: "1234", -2.5: "-2.50"} {
		if got := FormatValue(v); got != want {
			t.Errorf("FormatValue(%v) = %q, want %q", v, got, want)
		}
	}
}

// The committed configs/bench.toml is exactly what the generator writes,
// so the nftables variant (rendered from the generator) stays equivalent.
func TestCommittedPolicyIsGenerated(t *testing.T) {
	committed, err := os.ReadFile("../configs/bench.toml")
	if err != nil {
		t.Fatal(err)
	}
	if string(committed) != Generate(PolicyRules).TOML() {
		t.Fatal("configs/bench.toml is stale: go run ./bench/cmd/genpolicy -o configs/bench.toml")
	}
	f, err := config.Parse("configs/bench.toml", committed)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(f.Policy.Rules); n != PolicyRules {
		t.Fatalf("%d rules", n)
	}
}

// No filler rule may match a benchmark flow: otherwise the benchmark
// would measure a drop, not the data path.
func TestFillerNeverMatchesBenchTraffic(t *testing.T) {
	p := Generate(PolicyRules)
	benchPorts := []uint16{PortIperf, PortReqResp, PortPingPong, PortHold}
	client, server := ClientNets[0].Addr().Next().Next(), ServerNets[0].Addr().Next().Next()
	for i, r := range p.Rules {
		matches := matchAny(r.Src, client) && matchAny(r.Dst, server) && slices.ContainsFunc(benchPorts, func(port uint16) bool {
			if len(r.DstPorts) == 0 {
				return true
			}
			for _, pr := range r.DstPorts {
				if pr.Lo <= port && port <= pr.Hi {
					return true
				}
			}
			return false
		})
		isBench := strings.HasPrefix(r.Name, "allow-bench-")
		if matches && !isBench {
			t.Errorf("rule %d %s matches bench traffic", i, r.Name)
		}
		if isBench && i < len(p.Rules)-3 {
			t.Errorf("bench rule %s at %d, want it among the last three", r.Name, i)
		}
	}
}

func matchAny(ps []netip.Prefix, a netip.Addr) bool {
	if len(ps) == 0 {
		return true
	}
	return slices.ContainsFunc(ps, func(p netip.Prefix) bool { return p.Contains(a) })
}

// nft accepts the generated ruleset (checked in a throw-away namespace).
func TestNFTRulesetLoads(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root, and CI=true")
		}
		t.Skip("needs root")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("nft not installed (make deps-bench)")
	}
	name := "tgb-test-" + strings.ReplaceAll(time.Now().Format("150405.000000"), ".", "")
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	cmd := exec.Command("ip", "netns", "exec", name, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(Generate(PolicyRules).NFT())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft -f: %v: %s", err, out)
	}
	out, err := exec.Command("ip", "netns", "exec", name, "nft", "-a", "list", "chain", "inet", NFTTable, "forward").Output()
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(out, []byte("# handle")); n < PolicyRules {
		t.Fatalf("only %d nft rules", n)
	}
}
