// Package testenv holds the checks tests share about the machine they run
// on.
package testenv

import (
	"os"
	"testing"
)

// RequireRoot skips a test that needs root (network namespaces, TUN
// devices) when not running as root. Under CI=true it fails instead:
// there, a skip would hide a broken setup.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("needs root (network namespaces, /dev/net/tun), and CI=true forbids skipping root tests")
	}
	t.Skip("needs root: network namespaces and /dev/net/tun (run the tests as root, e.g. `sudo go test ./...`)")
}
