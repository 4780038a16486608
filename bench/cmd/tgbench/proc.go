package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/tungate/tungate/internal/lab"
)

// tail keeps the last bytes a process wrote, for error messages.
type tail struct {
	mu  sync.Mutex // guards buf
	buf []byte
}

const tailMax = 4096

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > tailMax {
		t.buf = append(t.buf[:0:0], t.buf[len(t.buf)-tailMax:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.TrimSpace(t.buf))
}

// bg is a long-running helper process inside a namespace (a server agent,
// iperf3 -s). `ip netns exec` execs the command, so the pid is the helper's.
type bg struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   tail
	done  chan struct{} // closed once waited for
}

// startBG starts name in ns. With readyLine set it waits (up to 10s) for a
// stdout line equal to it.
func startBG(ctx context.Context, ns lab.NS, readyLine string, name string, args ...string) (*bg, error) {
	b := &bg{name: name, done: make(chan struct{})}
	b.cmd = exec.Command("ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
	b.cmd.Stderr = &b.out
	var err error
	if b.stdin, err = b.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := b.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := b.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	ready := make(chan struct{})
	// Owned by b; ends at the process's EOF on stdout.
	go func() {
		sc := bufio.NewScanner(stdout)
		signalled := readyLine == ""
		if signalled {
			close(ready)
		}
		for sc.Scan() {
			if !signalled && sc.Text() == readyLine {
				signalled = true
				close(ready)
				continue
			}
			b.out.Write(append(sc.Bytes(), '\n'))
		}
		b.cmd.Wait()
		close(b.done)
	}()
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case <-ready:
		return b, nil
	case <-b.done:
		return nil, fmt.Errorf("%s exited at start: %s", name, b.out.String())
	case <-t.C:
	case <-ctx.Done():
	}
	b.stop()
	return nil, fmt.Errorf("%s not ready: %s", name, b.out.String())
}

// stop closes stdin, then SIGTERMs, then kills, and waits.
func (b *bg) stop() {
	b.stdin.Close()
	for _, step := range []struct {
		sig  os.Signal
		wait time.Duration
	}{{nil, time.Second}, {syscall.SIGTERM, 2 * time.Second}, {syscall.SIGKILL, 5 * time.Second}} {
		if step.sig != nil {
			_ = b.cmd.Process.Signal(step.sig)
		}
		select {
		case <-b.done:
			return
		case <-time.After(step.wait):
		}
	}
}

// agent runs a tgbench agent subcommand in ns to completion and returns its
// stdout.
func agent(ctx context.Context, self string, ns lab.NS, timeout time.Duration, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var out bytes.Buffer
	var errOut tail
	cmd := ns.Command(ctx, self, args...)
	cmd.Stdout = &out
	cmd.Stderr = &errOut
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s: %w: %s", args[0], err, errOut.String())

	}
	return out.Bytes(), nil
}
