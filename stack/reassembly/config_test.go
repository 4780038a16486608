package reassembly

import (
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/tungate/tungate/internal/units"
)

func TestConfigDefaults(t *testing.T) {
	var c Config
	c.Defaults()
	if got, want := c.Memory, units.Size(4<<20); got != want {
		t.Errorf("memory default: got %v; want %v", got, want)
	}
	if got, want := c.Timeout.D(), 30*time.Second; got != want {
		t.Errorf("timeout default: got %v; want %v", got, want)
	}
	if errs := c.Validate(); len(errs) != 0 {
		t.Errorf("defaults do not validate: %v", errs)
	}
	set := Config{Memory: 1 << 20, Timeout: units.Duration(5 * time.Second)}
	set.Defaults()
	if set.Memory != 1<<20 || set.Timeout.D() != 5*time.Second {
		t.Errorf("Defaults changed set values: got %v, %v", set.Memory, set.Timeout)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		want string // the only error; "" for none
	}{
		{"defaults", func(*Config) {}, ""},
		{"least memory", func(c *Config) { c.Memory = 64 << 10 }, ""},
		{"most memory", func(c *Config) { c.Memory = 1 << 30 }, ""},
		{"shortest timeout", func(c *Config) { c.Timeout = units.Duration(time.Second) }, ""},
		{"longest timeout", func(c *Config) { c.Timeout = units.Duration(120 * time.Second) }, ""},
		{"memory too small", func(c *Config) { c.Memory = 64<<10 - 1 }, "fragments.memory: must be between 64KiB and 1GiB, got 65535"},
		{"memory too large", func(c *Config) { c.Memory = 2 << 30 }, "fragments.memory: must be between 64KiB and 1GiB, got 2GiB"},
		{"memory negative", func(c *Config) { c.Memory = -1 }, "fragments.memory: must be between 64KiB and 1GiB, got -1"},
		{"timeout too short", func(c *Config) { c.Timeout = units.Duration(500 * time.Millisecond) }, "fragments.timeout: must be between 1s and 2m0s, got 500ms"},
		{"timeout too long", func(c *Config) { c.Timeout = units.Duration(3 * time.Minute) }, "fragments.timeout: must be between 1s and 2m0s, got 3m0s"},
		{"timeout negative", func(c *Config) { c.Timeout = units.Duration(-time.Second) }, "fragments.timeout: must be between 1s and 2m0s, got -1s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c Config
			c.Defaults()
			tc.mod(&c)
			var got []string
			for _, e := range c.Validate() {
				got = append(got, e.Error())
			}
			if tc.want == "" && len(got) != 0 || tc.want != "" && (len(got) != 1 || got[0] != tc.want) {
				t.Errorf("got %q; want [%q]", got, tc.want)
			}
		})
	}
}

// TestConfigValidateAll checks every invalid setting is reported.
func TestConfigValidateAll(t *testing.T) {
	c := Config{Memory: 1, Timeout: units.Duration(time.Hour)}
	var got []string
	for _, e := range c.Validate() {
		got = append(got, strings.Join(e.Key, "."))
	}
	if want := "fragments.memory fragments.timeout"; strings.Join(got, " ") != want {
		t.Errorf("got %v; want %s", got, want)
	}
}

// TestConfigTOML checks the section decodes as the file writes it.
func TestConfigTOML(t *testing.T) {
	var doc struct {
		Fragments Config `toml:"fragments"`
	}
	if _, err := toml.Decode("[fragments]\nmemory = \"8MiB\"\ntimeout = \"10s\"\n", &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Fragments.Memory != 8<<20 || doc.Fragments.Timeout.D() != 10*time.Second {
		t.Errorf("got %v, %v; want 8MiB, 10s", doc.Fragments.Memory, doc.Fragments.Timeout)
	}
}
