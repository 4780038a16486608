package lab

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netns"
)

// NS is one named network namespace (as in `ip netns`).
type NS struct {
	Name string
}

// Do runs fn on an OS thread switched into the namespace. Sockets fn creates
// belong to the namespace for life and may be used from any goroutine after
// Do returns. fn must not start goroutines that expect to be in the
// namespace: only the calling thread is switched.
func (ns NS) Do(fn func() error) error {
	target, err := netns.GetFromName(ns.Name)
	if err != nil {
		return fmt.Errorf("lab: open netns %s: %w", ns.Name, err)
	}
	defer target.Close()

	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("lab: current netns: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("lab: enter netns %s: %w", ns.Name, err)
	}
	fnErr := fn()
	if err := netns.Set(orig); err != nil {
		// The thread stays locked on purpose: when this goroutine ends, the
		// runtime throws the thread away instead of reusing it in the wrong
		// namespace.
		return fmt.Errorf("lab: leave netns %s: %w", ns.Name, err)
	}
	runtime.UnlockOSThread()
	return fnErr
}

// Command returns cmd prepared to run name inside the namespace through
// `ip netns exec`, which also gives it the namespace's view of /sys.
func (ns NS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
}

// Listen is net.Listen inside the namespace.
func (ns NS) Listen(network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := ns.Do(func() (err error) {
		ln, err = net.Listen(network, addr)
		return err
	})
	return ln, err
}

// ListenPacket is net.ListenPacket inside the namespace.
func (ns NS) ListenPacket(network, addr string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := ns.Do(func() (err error) {
		pc, err = net.ListenPacket(network, addr)
		return err
	})
	return pc, err
}

// Dial connects from inside the namespace. addr must be a literal address:
// name resolution would run outside the namespace.
func (ns NS) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := ns.Do(func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// writeSysctl sets a sysctl of the calling thread's network namespace; key
// is the path below /proc/sys. Only meaningful inside Do.
func writeSysctl(key, value string) error {
	p := filepath.Join("/proc/sys", key)
	if err := os.WriteFile(p, []byte(value), 0); err != nil {
		return fmt.Errorf("lab: sysctl %s=%s: %w", key, value, err)
	}
	return nil
}

// Sysctl reads a sysctl inside the namespace; key is the path below
// /proc/sys, e.g. "net/ipv4/ip_forward".
func (ns NS) Sysctl(key string) (string, error) {
	var v []byte
	err := ns.Do(func() (err error) {
		v, err = os.ReadFile(filepath.Join("/proc/sys", key))
		return err
	})
	if err != nil {
		return "", err
	}
	if n := len(v); n > 0 && v[n-1] == '\n' {
		v = v[:n-1]
	}
	return string(v), nil
}
