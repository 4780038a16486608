package egress

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
	if got, want := c.DialTimeout.D(), 10*time.Second; got != want {
		t.Errorf("dial_timeout default: got %v; want %v", got, want)
	}
	if errs := c.Validate(); len(errs) != 0 {
		t.Errorf("defaults do not validate: %v", errs)
	}

	set := Config{DialTimeout: units.Duration(3 * time.Second)}
	set.Defaults()
	if got, want := set.DialTimeout.D(), 3*time.Second; got != want {
		t.Errorf("Defaults changed a set dial_timeout: got %v; want %v", got, want)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		want string // the only error, key and message; "" for none
	}{
		{"defaults", func(*Config) {}, ""},
		{"interface and mark set", func(c *Config) { c.Interface, c.Mark = "eth0", 0x10 }, ""},
		{"longest interface name", func(c *Config) { c.Interface = "abcdefghijklmno" }, ""},
		{"largest mark", func(c *Config) { c.Mark = 1<<32 - 1 }, ""},
		{"mark", func(c *Config) { c.Mark = -2 }, "egress.mark: must be between 0 and 4294967295, got -2"},
		{"mark too big", func(c *Config) { c.Mark = 1 << 33 }, "egress.mark: must be between 0 and 4294967295, got 8589934592"},
		{"interface too long", func(c *Config) { c.Interface = "a-very-long-interface-name" }, `egress.interface: "a-very-long-interface-name" is not a valid interface name`},
		{"interface with slash", func(c *Config) { c.Interface = "a/b" }, `egress.interface: "a/b" is not a valid interface name`},
		{"interface with space", func(c *Config) { c.Interface = "eth 0" }, `egress.interface: "eth 0" is not a valid interface name`},
		{"dial timeout", func(c *Config) { c.DialTimeout = units.Duration(-time.Second) }, "egress.dial_timeout: must be positive, got -1s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c Config
			c.Defaults()
			tc.mod(&c)
			errs := c.Validate()
			var got []string
			for _, e := range errs {
				got = append(got, e.Error())
			}
			if tc.want == "" && len(got) != 0 || tc.want != "" && (len(got) != 1 || got[0] != tc.want) {
				t.Errorf("got %q; want [%q]", got, tc.want)
			}
			if len(errs) == 1 {
				if got, want := strings.Join(errs[0].Key, "."), strings.SplitN(tc.want, ":", 2)[0]; got != want {
					t.Errorf("key: got %s; want %s", got, want)
				}
			}
		})
	}
}

// TestConfigValidateAll checks that every invalid setting is reported, not
// only the first.
func TestConfigValidateAll(t *testing.T) {
	c := Config{Interface: "a/b", Mark: -1, DialTimeout: units.Duration(-time.Second)}
	var got []string
	for _, e := range c.Validate() {
		got = append(got, strings.Join(e.Key, "."))
	}
	want := []string{"egress.interface", "egress.mark", "egress.dial_timeout"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("got %v; want %v", got, want)
	}
}

func TestConfigTOMLKeys(t *testing.T) {
	var file struct {
		Egress Config `toml:"egress"`
	}
	md, err := toml.Decode(`
[egress]
interface = "eth1"
mark = 4660
dial_timeout = "2500ms"
`, &file)
	if err != nil {
		t.Fatal(err)
	}
	if u := md.Undecoded(); len(u) != 0 {
		t.Errorf("undecoded keys: %v", u)
	}
	got := file.Egress
	want := Config{Interface: "eth1", Mark: 4660, DialTimeout: units.Duration(2500 * time.Millisecond)}
	if got != want {
		t.Errorf("got %+v; want %+v", got, want)
	}
}
