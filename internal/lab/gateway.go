package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrGatewayExited is returned by WaitFor when the gateway process ended
// before a matching line appeared.
var ErrGatewayExited = errors.New("gateway exited")

// Gateway is a tungate process running inside the lab's gateway namespace.
type Gateway struct {
	cmd        *exec.Cmd
	configPath string
	tee        io.Writer

	mu      sync.Mutex    // guards lines, partial, changed
	lines   []string      // complete output lines, in order
	partial []byte        // an unterminated last line
	changed chan struct{} // closed and replaced whenever lines grows

	exited  chan struct{} // closed once the process has been waited for
	exitErr error         // set before exited is closed

	stopOnce sync.Once
	stopErr  error
}

// StartGateway writes configText to a temporary file and runs
// `BINARY run -c FILE` inside the gateway namespace, collecting its stdout
// and stderr lines. It returns once the gateway logs a line whose msg is
// "ready"; if the gateway exits first, or the ready timeout or ctx expires,
// it stops the process and returns an error carrying its output.
func (l *Lab) StartGateway(ctx context.Context, binary, configText string) (*Gateway, error) {
	f, err := os.CreateTemp("", "tungate-lab-"+l.Suffix+"-*.toml")
	if err != nil {
		return nil, fmt.Errorf("lab: gateway config: %w", err)
	}
	_, werr := f.WriteString(configText)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(f.Name())
		return nil, fmt.Errorf("lab: gateway config: %w", werr)
	}

	g := &Gateway{
		configPath: f.Name(),
		tee:        l.opts.GatewayOutput,
		changed:    make(chan struct{}),
		exited:     make(chan struct{}),
	}
	// Not CommandContext: the process outlives ctx and ends through Stop,
	// with SIGTERM, so it can remove its routes and the TUN.
	g.cmd = exec.Command("ip", "netns", "exec", l.Gateway.Name, binary, "run", "-c", g.configPath)
	g.cmd.Stdout = (*lineWriter)(g)
	g.cmd.Stderr = (*lineWriter)(g)
	if err := g.cmd.Start(); err != nil {
		os.Remove(g.configPath)
		return nil, fmt.Errorf("lab: start gateway: %w", err)
	}
	// Owned by g; ends when the process does.
	go func() {
		err := g.cmd.Wait()
		g.mu.Lock()
		g.flushPartial()
		g.exitErr = err
		g.mu.Unlock()
		close(g.exited)
	}()

	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		g.Stop(time.Second)
		return nil, errors.New("lab: StartGateway after Close")
	}
	l.gateways = append(l.gateways, g)
	l.mu.Unlock()

	wctx, cancel := context.WithTimeout(ctx, l.opts.ReadyTimeout)
	defer cancel()
	if _, err := g.WaitFor(wctx, MsgIs("ready")); err != nil {
		stopErr := g.Stop(3 * time.Second)
		return nil, fmt.Errorf("lab: gateway not ready: %w (exit: %v)\n%s", err, stopErr, g.Output())
	}
	return g, nil
}

// Process is the gateway's process (the `ip netns exec` wrapper execs it, so
// this is tungate itself).
func (g *Gateway) Process() *os.Process { return g.cmd.Process }

// Reload asks the gateway to reload its configuration (SIGHUP).
func (g *Gateway) Reload() error { return g.cmd.Process.Signal(syscall.SIGHUP) }

// ConfigPath is the file the gateway was started with; rewriting it and
// calling Reload exercises reloads.
func (g *Gateway) ConfigPath() string { return g.configPath }

// Exited is closed when the gateway process has ended.
func (g *Gateway) Exited() <-chan struct{} { return g.exited }

// Stop sends SIGTERM and waits up to timeout for the gateway to exit, then
// kills it. It returns the process's exit error, or an error saying it had to
// be killed. Later calls return the first call's result.
func (g *Gateway) Stop(timeout time.Duration) error {
	g.stopOnce.Do(func() {
		defer os.Remove(g.configPath)
		select {
		case <-g.exited:
			g.stopErr = g.exitError()
			return
		default:
		}
		_ = g.cmd.Process.Signal(syscall.SIGTERM)
		t := time.NewTimer(timeout)
		defer t.Stop()
		select {
		case <-g.exited:
			g.stopErr = g.exitError()
		case <-t.C:
			_ = g.cmd.Process.Kill()
			<-g.exited
			g.stopErr = fmt.Errorf("lab: gateway did not exit within %v of SIGTERM; killed", timeout)
		}
	})
	return g.stopErr
}

func (g *Gateway) exitError() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.exitErr != nil {
		return fmt.Errorf("lab: gateway: %w", g.exitErr)
	}
	return nil
}

// Logs returns a copy of the lines the gateway has written so far.
func (g *Gateway) Logs() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.lines...)
}

// Output is Logs joined with newlines, for error messages.
func (g *Gateway) Output() string {
	return strings.Join(g.Logs(), "\n")
}

// WaitFor returns the first line, already written or still to come, for
// which match is true. It fails when ctx ends or, with ErrGatewayExited,
// when the gateway exits without writing one.
func (g *Gateway) WaitFor(ctx context.Context, match func(line string) bool) (string, error) {
	next := 0
	for {
		g.mu.Lock()
		line, ok := g.matchFrom(&next, match)
		changed := g.changed
		g.mu.Unlock()
		if ok {
			return line, nil
		}
		select {
		case <-changed:
		case <-g.exited:
			// Lines written just before exit are flushed before exited
			// closes; one more scan sees them.
			g.mu.Lock()
			line, ok := g.matchFrom(&next, match)
			g.mu.Unlock()
			if ok {
				return line, nil
			}
			return "", fmt.Errorf("%w: %v", ErrGatewayExited, g.exitError())
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

// matchFrom returns the first line from *next on that match accepts, and
// moves *next past the lines it rejected. The caller holds g.mu.
func (g *Gateway) matchFrom(next *int, match func(line string) bool) (string, bool) {
	for ; *next < len(g.lines); *next++ {
		if match(g.lines[*next]) {
			return g.lines[*next], true
		}
	}
	return "", false
}

// MsgIs matches a JSON log line whose "msg" is msg.
func MsgIs(msg string) func(string) bool {
	return func(line string) bool {
		r, ok := ParseLog(line)
		return ok && r["msg"] == msg
	}
}

// ParseLog decodes one JSON log line; ok is false for anything else.
func ParseLog(line string) (rec map[string]any, ok bool) {
	if !strings.HasPrefix(line, "{") {
		return nil, false
	}
	if err := json.Unmarshal([]byte(line), &rec); err != nil {
		return nil, false
	}
	return rec, true
}

// lineWriter splits the gateway's output into lines; exec copies both
// stdout and stderr into it from its own goroutines, hence the lock.
type lineWriter Gateway

func (w *lineWriter) Write(p []byte) (int, error) {
	g := (*Gateway)(w)
	if g.tee != nil {
		// Best effort: a failing copy must not stall the gateway.
		_, _ = g.tee.Write(p)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	data := p
	grew := false
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			g.partial = append(g.partial, data...)
			break
		}
		g.partial = append(g.partial, data[:i]...)
		g.lines = append(g.lines, string(g.partial))
		g.partial = g.partial[:0]
		data = data[i+1:]
		grew = true
	}
	if grew {
		g.notify()
	}
	return len(p), nil
}

// flushPartial turns a trailing unterminated line into a line; g.mu held.
func (g *Gateway) flushPartial() {
	if len(g.partial) > 0 {
		g.lines = append(g.lines, string(g.partial))
		g.partial = nil
		g.notify()
	}
}

// notify wakes every WaitFor; g.mu held.
func (g *Gateway) notify() {
	close(g.changed)
	g.changed = make(chan struct{})
}
