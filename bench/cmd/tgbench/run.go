package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tungate/tungate/bench"
	"github.com/tungate/tungate/internal/lab"
)

type runOpts struct {
	binary, config, outDir, peer string
	quick                        bool
	d, timeout                   time.Duration
	idleN                        int
	self                         string
	tests                        []string // nil: all (or the quick set)
	gwLog                        string
}

func cmdRun(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var o runOpts
	fs.StringVar(&o.binary, "bin", "bin/tungate", "tungate binary")
	fs.StringVar(&o.config, "config", "configs/bench.toml", "tungate config for the tungate variant")
	fs.StringVar(&o.outDir, "out", "bench/results", "directory for the JSON result")
	fs.StringVar(&o.peer, "peer", "", "another gateway command, run with sh -c in the gateway namespace (env: BENCH_LAN_IF, BENCH_WAN_IF, ...)")
	fs.BoolVar(&o.quick, "quick", false, "shorter tests, fewer cases")
	fs.DurationVar(&o.d, "d", 0, "duration per test (default 5s, quick 2s)")
	fs.DurationVar(&o.timeout, "timeout", 0, "bound on the whole run (default 9m30s, quick 1m50s)")
	fs.IntVar(&o.idleN, "idle", 10000, "idle connections to hold")
	only := fs.String("variants", "", "comma-separated subset of kernel,nftables,tungate,payload,peer")
	testList := fs.String("tests", "", "comma-separated subset of the tests (keys as in the JSON)")
	fs.StringVar(&o.gwLog, "gwlog", "", "append the tungate gateway's log lines to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.d == 0 {
		o.d = map[bool]time.Duration{false: 5 * time.Second, true: 2 * time.Second}[o.quick]
	}
	if o.timeout == 0 {
		o.timeout = map[bool]time.Duration{false: 9*time.Minute + 30*time.Second, true: 110 * time.Second}[o.quick]
	}
	if err := preflight(&o); err != nil {
		return err
	}
	cfgText, err := os.ReadFile(o.config)
	if err != nil {
		return err
	}

	started := time.Now()
	host := hostInfo(o.peer)
	var busyNote string
	if f := strings.Fields(host.LoadAvg); len(f) > 0 {
		if load, err := strconv.ParseFloat(f[0], 64); err == nil && load > float64(host.CPUs)/2 {
			busyNote = fmt.Sprintf("host was busy at the start (load average %s on %d CPUs): figures are noisy", f[0], host.CPUs)
			fmt.Fprintln(os.Stderr, "warning:", busyNote)
		}
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()

	type variant struct {
		name  string
		setup func(ctx context.Context, l *lab.Lab) (*gateway, error)
		only  []string // the tests this variant runs; nil: all
	}
	ruleset := bench.Generate(bench.PolicyRules).NFT()
	variants := []variant{
		{"kernel", func(context.Context, *lab.Lab) (*gateway, error) { return noGateway(), nil }, nil},
		{"nftables", func(ctx context.Context, l *lab.Lab) (*gateway, error) { return setupNFT(ctx, l, ruleset) }, nil},
		{"tungate", func(ctx context.Context, l *lab.Lab) (*gateway, error) {
			return setupTungate(ctx, l, o.binary, string(cfgText))
		}, nil},
	}
	// payload: tungate with a 1000-pattern payload rule armed on the bulk
	// flows (TCP bulk only; compared with the tungate column).
	if armed, err := bench.ArmPayload(string(cfgText), bench.PayloadPatterns); err == nil {
		variants = append(variants, variant{"payload", func(ctx context.Context, l *lab.Lab) (*gateway, error) {
			return setupTungate(ctx, l, o.binary, armed)
		}, bulkTests})
	} else {
		fmt.Fprintln(os.Stderr, "note: no payload variant:", err)
	}
	if o.peer != "" {
		variants = append(variants, variant{"peer", func(ctx context.Context, l *lab.Lab) (*gateway, error) {
			return setupPeer(ctx, l, o.peer)
		}, nil})
	}

	if *only != "" {
		var keep []variant
		for _, v := range variants {
			if slices.Contains(strings.Split(*only, ","), v.name) {
				keep = append(keep, v)
			}
		}
		variants = keep
	}
	if *testList != "" {
		o.tests = strings.Split(*testList, ",")
	}

	results := map[string]map[string]float64{}
	var notes []string
	if busyNote != "" {
		notes = append(notes, busyNote)
	}
	note := func(format string, a ...any) {
		s := fmt.Sprintf(format, a...)
		notes = append(notes, s)
		fmt.Fprintln(os.Stderr, "note:", s)
	}
	var runErrs []bench.RunError
	var names []string
	var fatal error // the harness itself could not run (no lab)
	for _, v := range variants {
		names = append(names, v.name)
		fail := func(test, format string, a ...any) {
			e := bench.RunError{Variant: v.name, Test: test, Reason: fmt.Sprintf(format, a...)}
			runErrs = append(runErrs, e)
			fmt.Fprintln(os.Stderr, "failed:", e)
		}
		if fatal != nil || ctx.Err() != nil {
			why := fatal
			if why == nil {
				why = boundErr(ctx, o.timeout)
			}
			for _, k := range planned(&o, v.only) {
				fail(k, "not run: %v", why)
			}
			continue
		}
		res, err := runVariant(ctx, &o, v.name, v.setup, v.only, note, fail)
		results[v.name] = res
		if err != nil {
			fatal = err
			fmt.Fprintf(os.Stderr, "%s: %v\n", v.name, err)
		}
	}
	var metrics []bench.Metric
	for _, t := range tests() {
		metrics = append(metrics, t.values...)
		metrics = append(metrics,
			bench.Metric{Key: t.key + ".cpu", Label: "  gateway process CPU", Unit: "s"},
			bench.Metric{Key: t.key + ".host", Label: "  host CPU, all processes", Unit: "s"})
	}
	metrics = append(metrics,
		bench.Metric{Key: "peak_rss", Label: "gateway peak RSS (VmHWM)", Unit: "MiB"})
	rep := bench.Report{
		Started:  started.UTC(),
		Elapsed:  time.Since(started).Round(time.Second).String(),
		Host:     host,
		Quick:    o.quick,
		Duration: o.d.String(),
		Variants: names,
		RatioNum: "tungate",
		RatioDen: "nftables",
		Rows:     bench.BuildRows(metrics, names, results, runErrs, "tungate", "nftables"),
		Notes:    notes,
		Errors:   runErrs,
	}
	if rep.Errors == nil {
		rep.Errors = []bench.RunError{} // "errors": [] rather than null
	}
	rep.PayloadRatio = payloadRatios(results)
	fmt.Println()
	fmt.Printf("tungate benchmark, %s per test%s, %d-rule policy, %d idle conns; host: %s, %d CPUs\n",
		o.d, map[bool]string{true: " (quick)"}[o.quick], bench.PolicyRules, o.idleN, rep.Host.Kernel, rep.Host.CPUs)
	if err := bench.FormatTable(os.Stdout, rep); err != nil {
		return err
	}
	for _, k := range bulkTests {
		if r, ok := rep.PayloadRatio[k]; ok {
			fmt.Printf("armed %d-pattern payload rule, %s: %.2fx of tungate without it\n", bench.PayloadPatterns, k, r)
		}
	}
	for _, n := range notes {
		fmt.Println("note:", n)
	}
	path, err := writeReport(o.outDir, rep)
	if err != nil {
		return err
	}
	fmt.Printf("elapsed %s; written to %s\n", rep.Elapsed, path)
	if len(runErrs) > 0 {
		fmt.Fprintf(os.Stderr, "%d measurement(s) failed; their cells are footnoted in the table\n", len(runErrs))
	}
	// A failed measurement is part of the result (a footnoted cell); only
	// a harness that could not run, or was interrupted, fails the command.
	if fatal != nil {
		return fatal
	}
	return parent.Err()
}

// boundErr names why ctx ended: the run's time bound or an interruption.
func boundErr(ctx context.Context, bound time.Duration) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("the run's %s bound was reached", bound)
	}
	return ctx.Err()
}

// bulkTests are the TCP bulk tests, the ones the payload variant runs.
var bulkTests = []string{"tcp_c2s_1", "tcp_c2s_4", "tcp_s2c_1", "tcp_s2c_4"}

// payloadRatios is payload / tungate for each bulk test both measured.
func payloadRatios(results map[string]map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for _, k := range bulkTests {
		p, ok1 := results["payload"][k]
		t, ok2 := results["tungate"][k]
		if ok1 && ok2 && t > 0 {
			out[k] = p / t
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func preflight(o *runOpts) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root: it creates network namespaces and a TUN device (all removed afterwards)")
	}
	for _, tool := range []string{"ip", "iperf3", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is missing: make deps-bench installs it", tool)
		}
	}
	if _, err := os.Stat(o.binary); err != nil {
		return fmt.Errorf("tungate binary: %w (make build)", err)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	o.self = self
	return nil
}

// planned is the keys of the tests a variant runs under o.
func planned(o *runOpts, only []string) []string {
	var keys []string
	for _, t := range tests() {
		if o.tests != nil && !slices.Contains(o.tests, t.key) || o.tests == nil && o.quick && !t.inQuick {
			continue
		}
		if only != nil && !slices.Contains(only, t.key) {
			continue
		}
		keys = append(keys, t.key)
	}
	return keys
}

// runVariant builds a fresh lab, starts the servers and the gateway of one
// variant, runs every test and tears everything down, also on error and
// on cancellation. A test that fails, or every test left when the column
// cannot go on, is reported through fail; the returned error is only for
// a harness that cannot run at all (no lab).
func runVariant(ctx context.Context, o *runOpts, name string,
	setup func(context.Context, *lab.Lab) (*gateway, error), only []string,
	note func(string, ...any), fail func(test, format string, a ...any)) (map[string]float64, error) {
	res := map[string]float64{}
	fmt.Fprintf(os.Stderr, "== %s\n", name)
	todo := planned(o, only)
	failRest := func(format string, a ...any) {
		for _, k := range todo {
			fail(k, format, a...)
		}
		todo = nil
	}
	var gwOut io.Writer = io.Discard
	if o.gwLog != "" {
		f, err := os.OpenFile(o.gwLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return res, err
		}
		defer f.Close()
		gwOut = f
	}
	l, err := lab.New(ctx, lab.Options{Prefix: "tgb", Log: slog.New(slog.DiscardHandler), GatewayOutput: gwOut})
	if err != nil {
		return res, fmt.Errorf("lab: %w", err)
	}
	defer func() {
		if cerr := l.Close(); cerr != nil {
			note("%s: teardown: %v", name, cerr)
		}
	}()

	srv, err := startBG(ctx, l.Server, "ready", o.self, "serve", "-addr", lab.ServerV4.String())
	if err != nil {
		failRest("not run: server agent: %v", err)
		return res, nil
	}
	defer srv.stop()
	startIperf := func() (*bg, error) {
		return startBG(ctx, l.Server, "", "iperf3", "-s", "-B", lab.ServerV4.String(), "-p", fmt.Sprint(bench.PortIperf))
	}
	ip3, err := startIperf()
	if err != nil {
		failRest("not run: iperf3 -s: %v", err)
		return res, nil
	}
	defer func() { ip3.stop() }()

	gw, err := setup(ctx, l)
	if err != nil {
		failRest("not run: gateway setup: %v", err)
		return res, nil
	}
	defer func() {
		if serr := gw.stop(); serr != nil {
			note("%s: stop: %v", name, serr)
		}
	}()
	if _, err := agent(ctx, o.self, l.Client, 20*time.Second, "probe", "-addr", lab.ServerV4.String()); err != nil {
		failRest("not run: no path through the gateway: %v", err)
		return res, nil
	}
	e := &env{lab: l, self: o.self, d: o.d, idleN: o.idleN, gw: gw,
		note: func(format string, a ...any) { note(name+": "+format, a...) }}
	for _, t := range tests() {
		if !slices.Contains(todo, t.key) {
			continue
		}
		if ctx.Err() != nil {
			failRest("not run: %v", boundErr(ctx, o.timeout))
			return res, nil
		}
		todo = slices.DeleteFunc(todo, func(k string) bool { return k == t.key })
		cpu0, cpuErr := gatewayCPU(gw)
		host0, hostErr := bench.HostBusy()
		vals, terr := t.run(ctx, e)
		cpu1, cpuErr1 := gatewayCPU(gw)
		host1, hostErr1 := bench.HostBusy()
		if aerr := gw.alive(); aerr != nil {
			fail(t.key, "gateway died: %v", aerr)
			failRest("not run: the gateway died in %s", t.key)
			return res, nil
		}
		if terr != nil {
			fail(t.key, "%v", terr)
			// A client that failed or was killed can leave iperf3 -s
			// inside its test (it serves one at a time): start a fresh
			// one so the column's next tests are not refused as busy.
			ip3.stop()
			if ip3, err = startIperf(); err != nil {
				failRest("not run: iperf3 -s restart: %v", err)
				return res, nil
			}
			continue
		}
		for k, v := range vals {
			res[k] = v
		}
		if gw.pid != 0 && cpuErr == nil && cpuErr1 == nil {
			res[t.key+".cpu"] = cpu1 - cpu0
		}
		if hostErr == nil && hostErr1 == nil {
			res[t.key+".host"] = host1 - host0
		}
		fmt.Fprintf(os.Stderr, "   %-10s %s\n", t.key, summary(t, res))
	}
	if gw.pid != 0 {
		if m, err := bench.TreeMemory(gw.pid); err == nil {
			res["peak_rss"] = float64(m.HWM) / (1 << 20)
		}
	}
	return res, nil
}

func gatewayCPU(gw *gateway) (float64, error) {
	if gw.pid == 0 {
		return 0, nil
	}
	return bench.TreeCPU(gw.pid)
}

func summary(t test, res map[string]float64) string {
	var parts []string
	for _, m := range t.values {
		if v, ok := res[m.Key]; ok {
			parts = append(parts, bench.FormatValue(v)+" "+m.Unit)
		}
	}
	if v, ok := res[t.key+".cpu"]; ok {
		parts = append(parts, "gw cpu "+bench.FormatValue(v)+" s")
	}
	return strings.Join(parts, ", ")
}

func hostInfo(peer string) bench.Host {
	h := bench.Host{CPUs: runtime.NumCPU(), Go: runtime.Version(), Peer: peer}
	var u syscall.Utsname
	if syscall.Uname(&u) == nil {
		var b strings.Builder
		for _, c := range u.Release {
			if c == 0 {
				break
			}
			b.WriteByte(byte(c))
		}
		h.Kernel = b.String()
	}
	first := func(name string, args ...string) string {
		out, _ := exec.Command(name, args...).Output()
		line, _, _ := strings.Cut(string(out), "\n")
		return strings.TrimSpace(line)
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		h.LoadAvg = strings.TrimSpace(string(b))
	}
	h.Iperf3 = first("iperf3", "--version")
	h.Nft = first("nft", "--version")
	return h
}

func writeReport(dir string, rep bench.Report) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	kind := "bench"
	if rep.Quick {
		kind = "bench-quick"
	}
	path := filepath.Join(dir, kind+"-"+rep.Started.Format("20060102T150405Z")+".json")
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return "", err
	}
	return path, os.WriteFile(path, append(b, '\n'), 0o644)
}
