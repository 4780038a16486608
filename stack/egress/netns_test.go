package egress

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tungate/tungate/internal/testenv"
)

// testNetns creates a fresh network namespace with lo up, runs the setup
// commands (arguments to `ip -n NS`) and deletes it when the test ends.
// Nothing here touches the namespace the test runs in.
func testNetns(t *testing.T, setup ...[]string) string {
	t.Helper()
	testenv.RequireRoot(t)
	name := fmt.Sprintf("tg-egress-%08x", rand.Uint32())
	ipCmd(t, "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	ipCmd(t, "-n", name, "link", "set", "lo", "up")
	for _, args := range setup {
		ipCmd(t, append([]string{"-n", name}, args...)...)
	}
	return name
}

// silentNeighbour is setup for testNetns: 198.18.0.2 resolves (static
// neighbour entry) to the far end of a veth pair that has no address, so
// packets to it leave and nothing ever answers.
var silentNeighbour = [][]string{
	{"link", "add", "v0", "type", "veth", "peer", "name", "v1"},
	{"addr", "add", "198.18.0.1/24", "dev", "v0"},
	{"link", "set", "v0", "up"},
	{"link", "set", "v1", "up"},
	{"neigh", "add", "198.18.0.2", "lladdr", "02:00:00:00:00:02", "dev", "v0", "nud", "permanent"},
}

func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %v: %v: %s", args, err, out)
	}
}

// netnsSysctl sets key=value inside netns name only: `ip netns exec` runs
// sysctl there, so the test's own namespace keeps its settings.
func netnsSysctl(t *testing.T, name, key, value string) {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", name, "sysctl", "-qw", key+"="+value).CombinedOutput()
	if err != nil {
		t.Fatalf("sysctl %s=%s in %s: %v: %s", key, value, name, err, out)
	}
}

// inNetns runs fn on a goroutine whose OS thread has entered netns name.
// Sockets fn creates live in that namespace. The thread stays locked, so the
// runtime discards it instead of reusing a thread in the wrong namespace.
// fn must report with t.Error, not t.Fatal (it is not the test goroutine).
func inNetns(t *testing.T, name string, fn func()) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: see above
		f, err := os.Open("/var/run/netns/" + name)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", name, err)
			return
		}
		fn()
		errc <- nil
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}
