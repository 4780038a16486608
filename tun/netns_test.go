package tun

import (
	"log/slog"
	"os"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/tungate/tungate/internal/testenv"
)

// requireRoot skips a test that needs root and a TUN device, except under
// CI where it must run.
func requireRoot(t testing.TB) {
	t.Helper()
	testenv.RequireRoot(t)
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("needs /dev/net/tun: %v", err)
		}
		t.Skipf("needs /dev/net/tun: %v", err)
	}
}

// enterNetns moves the test goroutine into a fresh network namespace for
// the rest of the test. The goroutine stays locked to its thread and is
// never unlocked, so the runtime retires the thread when the test ends and
// no other goroutine ever runs in the namespace. Everything that depends
// on the namespace (water, netlink without a handle, /proc/sys/net,
// creating sockets) must run on the test goroutine itself: no t.Run
// subtests, no t.Parallel, no namespace work in other goroutines. Reading
// and writing descriptors that already exist is fine from anywhere.
//
// The namespace has no name; it goes away when the thread has left it and
// its handle is closed, which the cleanup does (it also takes every device
// created in it, including TUNs whose descriptors are still open).
func enterNetns(t testing.TB) {
	t.Helper()
	requireRoot(t)
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatalf("current netns: %v", err)
	}
	ns, err := netns.New()
	if err != nil {
		orig.Close()
		t.Fatalf("new netns: %v", err)
	}
	t.Cleanup(func() {
		if err := netns.Set(orig); err != nil {
			t.Errorf("restore netns: %v", err)
		}
		orig.Close()
		ns.Close()
	})
	cur, err := netns.Get()
	if err != nil {
		t.Fatalf("current netns: %v", err)
	}
	defer cur.Close()
	if cur.Equal(orig) || !cur.Equal(ns) {
		t.Fatal("not in the test namespace; refusing to touch the original one")
	}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		t.Fatalf("lo: %v", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		t.Fatalf("lo up: %v", err)
	}
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}
