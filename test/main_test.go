// Package test holds the end-to-end tests: each one builds its own network
// namespaces with internal/lab, runs the real tungate binary as the gateway
// and drives traffic through it from the client namespace.
package test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// tungateBin is the binary every test runs, built once by TestMain from the
// working tree so the tests exercise exactly the code under review.
var tungateBin string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

// runMain exists so the deferred cleanup of the build directory runs before
// os.Exit.
func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "tungate-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)

	root, err := repoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: cannot find the repository root:", err)
		return 1
	}
	bin := filepath.Join(dir, "tungate")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/tungate")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/tungate failed: %v\n%s", err, out)
		return 1
	}
	tungateBin = bin
	return m.Run()
}

// repoRoot is the directory holding go.mod: `go env GOMOD` when the go tool
// answers, else two levels up from this file.
func repoRoot() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output(); err == nil {
		if mod := strings.TrimSpace(string(out)); mod != "" && mod != os.DevNull {
			return filepath.Dir(mod), nil
		}
	}
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("runtime.Caller failed")
	}
	root := filepath.Dir(filepath.Dir(file))
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return "", err
	}
	return root, nil
}

// requireTool skips, or under CI fails, when a command the test drives is
// not installed (`make deps` installs them).
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed (run `make deps`), and CI=true forbids skipping", name)
	}
	t.Skipf("%s is not installed: run `make deps`", name)
	return ""
}
