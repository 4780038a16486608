package configs

import (
	"path/filepath"
	"testing"

	"github.com/tungate/tungate/internal/config"
)

// TestConfigsLoad keeps every shipped configuration loadable, so a renamed
// key or a stricter check fails here instead of at an operator's start.
func TestConfigsLoad(t *testing.T) {
	files, err := filepath.Glob("*.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no configs/*.toml found")
	}
	for _, name := range files {
		t.Run(name, func(t *testing.T) {
			f, err := config.Load(name)
			if err != nil {
				t.Fatalf("%v", err)
			}
			if f.Compiled == nil {
				t.Fatal("loaded without a compiled policy")
			}
		})
	}
}
