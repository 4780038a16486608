package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/tungate/tungate/bench"
	"github.com/tungate/tungate/internal/lab"
)

// env is what a test needs: the lab, this executable (for the agents),
// the duration per test, and the gateway under test.
type env struct {
	lab   *lab.Lab
	self  string
	d     time.Duration
	idleN int
	gw    *gateway
	note  func(format string, a ...any)
}

// test is one measurement; its values are keyed by metric key.
type test struct {
	key, label string
	inQuick    bool
	values     []bench.Metric // what run returns, besides the CPU figures
	run        func(ctx context.Context, e *env) (map[string]float64, error)
}

func tests() []test {
	var ts []test
	for _, c := range []struct {
		dir     string
		reverse bool
		streams int
		quick   bool
	}{{"c2s", false, 1, true}, {"c2s", false, 4, false}, {"s2c", true, 1, false}, {"s2c", true, 4, true}} {
		key := fmt.Sprintf("tcp_%s_%d", c.dir, c.streams)
		label := fmt.Sprintf("TCP %s, %d stream", strings.Replace(c.dir, "2", "->", 1), c.streams)
		if c.streams > 1 {
			label += "s"
		}
		args := []string{"-P", strconv.Itoa(c.streams)}
		if c.reverse {
			args = append(args, "-R")
		}
		ts = append(ts, test{key: key, label: label, inQuick: c.quick,
			values: []bench.Metric{{Key: key, Label: label, Unit: "Gbit/s"}},
			run: func(ctx context.Context, e *env) (map[string]float64, error) {
				r, err := iperf(ctx, e, args...)
				if err != nil {
					return nil, err
				}
				return map[string]float64{key: r.BitsPerSecond / 1e9}, nil
			}})
	}
	for _, c := range []struct {
		size  int
		quick bool
	}{{64, true}, {1400, false}} {
		key := fmt.Sprintf("udp_%d", c.size)
		label := fmt.Sprintf("UDP %d B", c.size)
		ts = append(ts, test{key: key, label: label, inQuick: c.quick,
			values: []bench.Metric{
				{Key: key + ".kpps", Label: label + " delivered", Unit: "kpps"},
				{Key: key + ".loss", Label: label + " loss", Unit: "%"},
			},
			run: func(ctx context.Context, e *env) (map[string]float64, error) {
				r, err := iperf(ctx, e, "-u", "-b", "0", "-l", strconv.Itoa(c.size))
				if err != nil {
					return nil, err
				}
				return map[string]float64{key + ".kpps": r.DeliveredPPS() / 1e3, key + ".loss": r.LostPercent}, nil
			}})
	}
	ts = append(ts,
		test{key: "rtt", label: "TCP 1-byte ping-pong", inQuick: true,
			values: []bench.Metric{
				{Key: "rtt.p50", Label: "TCP 1-byte RTT p50", Unit: "us"},
				{Key: "rtt.p99", Label: "TCP 1-byte RTT p99", Unit: "us"},
			},
			run: func(ctx context.Context, e *env) (map[string]float64, error) {
				var r pingPongResult
				if err := runAgent(ctx, e, e.lab.Client, e.d+15*time.Second, &r,
					"pingpong", "-addr", lab.ServerV4.String(), "-d", e.d.String()); err != nil {
					return nil, err
				}
				return map[string]float64{"rtt.p50": r.P50us, "rtt.p99": r.P99us}, nil
			}},
		test{key: "connrate", label: "TCP new connections", inQuick: true,
			values: []bench.Metric{
				{Key: "connrate", Label: "TCP new conns, 1 B req/resp", Unit: "conn/s"},
				{Key: "connrate.dial_us", Label: "  mean connect", Unit: "us"},
				{Key: "connrate.dial_p99_us", Label: "  p99 connect", Unit: "us"},
				{Key: "connrate.resp_us", Label: "  mean response", Unit: "us"},
				{Key: "connrate.fin_us", Label: "  mean wait for server FIN", Unit: "us"},
				{Key: "connrate.errors", Label: "  failed", Unit: "conns"},
				{Key: "connrate.stalled", Label: "  stalled > 1 s at the end", Unit: "conns"},
			},
			run: func(ctx context.Context, e *env) (map[string]float64, error) {
				var r connRateResult
				if err := runAgent(ctx, e, e.lab.Client, e.d+15*time.Second, &r,
					"connrate", "-addr", lab.ServerV4.String(), "-d", e.d.String()); err != nil {
					return nil, err
				}
				if r.OK == 0 {
					return nil, fmt.Errorf("no connection completed (%d errors, first: %s)", r.Errors, r.FirstError)
				}
				out := map[string]float64{"connrate": r.PerSecond,
					"connrate.dial_us": r.DialUs, "connrate.resp_us": r.RespUs, "connrate.fin_us": r.FinUs, "connrate.dial_p99_us": r.DialP99Us}
				out["connrate.errors"] = float64(r.Errors)
				out["connrate.stalled"] = float64(r.Stalled)
				if r.Errors > 0 {
					e.note("connrate: %d failed, first: %s", r.Errors, r.FirstError)
				}
				return out, nil
			}},
		test{key: "idle", label: "idle TCP connections", inQuick: true,
			values: []bench.Metric{
				{Key: "idle.held", Label: "idle conns held", Unit: "conns"},
				{Key: "idle.open_s", Label: "time to open them", Unit: "s"},
				{Key: "idle.rss", Label: "gateway RSS while held", Unit: "MiB"},
			},
			run: idleTest},
	)
	return ts
}

func runAgent(ctx context.Context, e *env, ns lab.NS, timeout time.Duration, v any, args ...string) error {
	out, err := agent(ctx, e.self, ns, timeout, args...)
	if err != nil {
		return err
	}
	return json.Unmarshal(out, v)
}

// iperf runs one iperf3 client against the server namespace's iperf3 -s,
// bounded in time, retrying once when the server still finishes the
// previous test.
func iperf(ctx context.Context, e *env, extra ...string) (bench.IperfResult, error) {
	secs := max(1, int(e.d.Round(time.Second)/time.Second))
	args := append([]string{"-c", lab.ServerV4.String(), "-p", strconv.Itoa(bench.PortIperf),
		"-t", strconv.Itoa(secs), "-J", "--connect-timeout", "3000"}, extra...)
	bound := time.Duration(secs)*time.Second + 20*time.Second
	var lastErr error
	for attempt := 0; attempt < 2; attempt++ {
		if attempt > 0 {
			time.Sleep(time.Second)
		}
		cctx, cancel := context.WithTimeout(ctx, bound)
		cmd := e.lab.Client.Command(cctx, "iperf3", args...)
		errOut := &tail{}
		cmd.Stderr = errOut
		out, runErr := cmd.Output()
		killed := cctx.Err() != nil && ctx.Err() == nil
		cancel()
		r, err := bench.ParseIperf(out)
		if err == nil {
			return r, nil
		}
		switch {
		case killed:
			err = fmt.Errorf("iperf3 killed after %s without a result", bound)
		case runErr != nil && len(out) == 0:
			err = fmt.Errorf("iperf3: %w", runErr)
		}
		if s := errOut.String(); s != "" {
			err = fmt.Errorf("%w (stderr: %s)", err, s)
		}
		lastErr = err
		if !strings.Contains(err.Error(), "busy") {
			break
		}
	}
	return bench.IperfResult{}, lastErr
}

// idleTest opens e.idleN connections through the gateway, reads the
// gateway's resident memory while they are all open, then releases them.
func idleTest(ctx context.Context, e *env) (map[string]float64, error) {
	timeout := 30 * time.Second
	ctx, cancel := context.WithTimeout(ctx, timeout+30*time.Second)
	defer cancel()
	cmd := e.lab.Client.Command(ctx, e.self, "idle", "-addr", lab.ServerV4.String(),
		"-n", strconv.Itoa(e.idleN), "-timeout", timeout.String())
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	errOut := &tail{}
	cmd.Stderr = errOut
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() {
		stdin.Close() // the agent closes its connections and exits
		waitOrKill(cmd, 10*time.Second)
	}()
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err != nil {
		return nil, fmt.Errorf("idle agent: %v: %s", err, errOut.String())
	}
	var r idleResult
	if err := json.Unmarshal(line, &r); err != nil {
		return nil, err
	}
	if r.Held == 0 {
		return nil, fmt.Errorf("no connection held (%d failed: %s)", r.Failed, r.FirstError)
	}
	out := map[string]float64{"idle.held": float64(r.Held), "idle.open_s": r.Seconds}
	if e.gw.pid != 0 {
		// Let the gateway settle: the last handshakes' buffers are freed lazily.
		time.Sleep(500 * time.Millisecond)
		m, err := bench.TreeMemory(e.gw.pid)
		if err != nil {
			return nil, err
		}
		out["idle.rss"] = float64(m.RSS) / (1 << 20)
	}
	return out, nil
}

func waitOrKill(cmd *exec.Cmd, d time.Duration) {
	done := make(chan struct{})
	// Ends when the process is reaped, which the Kill below guarantees.
	go func() {
		cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
	}
}
