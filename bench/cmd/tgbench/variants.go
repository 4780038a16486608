package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/tungate/tungate/bench"
	"github.com/tungate/tungate/internal/lab"
)

// gateway is whatever filters in the gateway namespace for one variant.
type gateway struct {
	pid   int          // 0: the kernel does the work, no process to measure
	alive func() error // nil while the gateway process runs
	stop  func() error
}

func noGateway() *gateway {
	return &gateway{alive: func() error { return nil }, stop: func() error { return nil }}
}

// setupNFT loads the nftables equivalent of the benchmark policy into the
// gateway namespace, and only there.
func setupNFT(ctx context.Context, l *lab.Lab, ruleset string) (*gateway, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cmd := l.Gateway.Command(ctx, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("nft -f: %w: %s", err, bytes.TrimSpace(out))
	}
	out, err := l.Gateway.Command(ctx, "nft", "-a", "list", "table", "inet", bench.NFTTable).Output()
	if err != nil {
		return nil, fmt.Errorf("nft list: %w", err)
	}
	if n := bytes.Count(out, []byte(" # handle ")); n < 100 {
		return nil, fmt.Errorf("nft table has only %d rules", n)
	}
	return noGateway(), nil
}

// setupTungate runs the tungate binary on the bench config. Each run gets
// its own control socket path so parallel runs cannot collide.
func setupTungate(ctx context.Context, l *lab.Lab, binary, configText string) (*gateway, error) {
	text := strings.ReplaceAll(configText, `"/run/tungate-bench.sock"`, `"/run/tungate-bench-`+l.Suffix+`.sock"`)
	g, err := l.StartGateway(ctx, binary, text)
	if err != nil {
		return nil, err
	}
	return &gateway{
		pid: g.Process().Pid,
		alive: func() error {
			select {
			case <-g.Exited():
				return fmt.Errorf("tungate exited: %s", lastLines(g.Logs(), 5))
			default:
				return nil
			}
		},
		stop: func() error { return g.Stop(10 * time.Second) },
	}, nil
}

func lastLines(lines []string, n int) string {
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// peerEnv tells a PEER command where it runs.
func peerEnv(l *lab.Lab) []string {
	return []string{
		"BENCH_GW_NS=" + l.Gateway.Name,
		"BENCH_LAN_IF=" + lab.GatewayLANIf,
		"BENCH_WAN_IF=" + lab.GatewayWANIf,
		"BENCH_CLIENT_V4=" + lab.ClientV4.String(),
		"BENCH_CLIENT_V6=" + lab.ClientV6.String(),
		"BENCH_SERVER_V4=" + lab.ServerV4.String(),
		"BENCH_SERVER_V6=" + lab.ServerV6.String(),
		"BENCH_CLIENT_NETS=" + lab.ClientNetV4.String() + "," + lab.ClientNetV6.String(),
		"BENCH_SERVER_NETS=" + lab.ServerNetV4.String() + "," + lab.ServerNetV6.String(),
		fmt.Sprintf("BENCH_TCP_PORTS=%d,%d-%d", bench.PortIperf, bench.PortReqResp, bench.PortHold),
		fmt.Sprintf("BENCH_UDP_PORTS=%d", bench.PortIperf),
	}
}

// setupPeer runs the PEER command through sh in the gateway namespace, in
// its own process group so that stopping it reaches every process it forks.
// A command that configures something and exits 0 is accepted too; it then
// has no process to measure.
func setupPeer(ctx context.Context, l *lab.Lab, command string) (*gateway, error) {
	cmd := exec.Command("ip", "netns", "exec", l.Gateway.Name, "sh", "-c", command)
	cmd.Env = append(os.Environ(), peerEnv(l)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out := &tail{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("peer: %w", err)
	}
	done := make(chan struct{})
	var waitErr error
	// Owned by setupPeer's gateway; ends when the command does.
	go func() {
		waitErr = cmd.Wait()
		close(done)
	}()
	pgid := cmd.Process.Pid
	g := &gateway{pid: pgid}
	g.alive = func() error {
		select {
		case <-done:
			if waitErr != nil || g.pid != 0 {
				return fmt.Errorf("peer exited (%v): %s", waitErr, out.String())
			}
		default:
		}
		return nil
	}
	g.stop = func() error {
		for _, step := range []struct {
			sig  syscall.Signal
			wait time.Duration
		}{{syscall.SIGTERM, 5 * time.Second}, {syscall.SIGKILL, 5 * time.Second}} {
			select {
			case <-done:
				return nil
			default:
			}
			_ = syscall.Kill(-pgid, step.sig)
			select {
			case <-done:
				return nil
			case <-time.After(step.wait):
			}
		}
		return errors.New("peer did not exit after SIGKILL")
	}
	// Give a one-shot setup command a moment to finish.
	select {
	case <-done:
		if waitErr != nil {
			return nil, fmt.Errorf("peer failed: %v: %s", waitErr, out.String())
		}
		g.pid = 0
	case <-time.After(500 * time.Millisecond):
	case <-ctx.Done():
		g.stop()
		return nil, ctx.Err()
	}
	return g, nil
}
