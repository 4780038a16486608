package test

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tungate/tungate/configs"
	"github.com/tungate/tungate/internal/demo"
)

// TestDemoRows runs the demo's scenario against the real gateway on
// configs/demo.toml: every row of the table `tungate demo` prints is one
// subtest, and each must have observed what it expected.
func TestDemoRows(t *testing.T) {
	l := newLab(t)
	sock := filepath.Join(t.TempDir(), "tungate.sock")
	cfg := strings.Replace(string(configs.Demo), `"/run/tungate-demo.sock"`, strconv.Quote(sock), 1)
	if cfg == string(configs.Demo) {
		t.Fatal("configs/demo.toml no longer names /run/tungate-demo.sock; update this test's socket rewrite")
	}
	startGateway(t, l, cfg)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rows := demo.RunScenario(ctx, l)
	if len(rows) == 0 {
		t.Fatal("the demo scenario produced no rows")
	}
	for _, r := range rows {
		t.Run(r.Name, func(t *testing.T) {
			if !r.OK {
				t.Errorf("expected %s, observed %s", r.Expected, r.Observed)
			} else {
				t.Logf("expected %s, observed %s", r.Expected, r.Observed)
			}
		})
	}
}
