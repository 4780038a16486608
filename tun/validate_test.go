package tun

import (
	"slices"
	"strings"
	"testing"

	"github.com/tungate/tungate/internal/cfgerr"
)

func keys(l cfgerr.List) []string {
	var out []string
	for _, e := range l {
		out = append(out, strings.Join(e.Key, "."))
	}
	return out
}

func TestConfigDefaultsValid(t *testing.T) {
	var c Config
	c.Defaults()
	if errs := c.Validate(); len(errs) != 0 {
		t.Errorf("defaults invalid: %v", errs)
	}
	var r RoutingConfig
	r.Defaults()
	if errs := r.Validate(); len(errs) != 0 {
		t.Errorf("routing defaults invalid: %v", errs)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Name: "tungate0", MTU: 1500, Queues: 1}
	cases := []struct {
		name string
		mod  func(*Config)
		want []string
	}{
		{"valid", func(*Config) {}, nil},
		{"addresses", func(c *Config) { c.Addresses = []string{"198.18.0.1/24", "2001:2::1/64", "198.18.1.1/32"} }, nil},
		{"max name", func(c *Config) { c.Name = "abcdefghijklmno" }, nil},
		{"mtu bounds", func(c *Config) { c.MTU = 65535; c.Queues = 16 }, nil},
		{"empty name", func(c *Config) { c.Name = "" }, []string{"tun.name"}},
		{"long name", func(c *Config) { c.Name = "abcdefghijklmnop" }, []string{"tun.name"}},
		{"slash", func(c *Config) { c.Name = "a/b" }, []string{"tun.name"}},
		{"space", func(c *Config) { c.Name = "a b" }, []string{"tun.name"}},
		{"colon", func(c *Config) { c.Name = "a:1" }, []string{"tun.name"}},
		{"pattern", func(c *Config) { c.Name = "tun%d" }, []string{"tun.name"}},
		{"dotdot", func(c *Config) { c.Name = ".." }, []string{"tun.name"}},
		{"non-ascii", func(c *Config) { c.Name = "tün" }, []string{"tun.name"}},
		{"mtu low", func(c *Config) { c.MTU = 1279 }, []string{"tun.mtu"}},
		{"mtu high", func(c *Config) { c.MTU = 65536 }, []string{"tun.mtu"}},
		{"mtu zero", func(c *Config) { c.MTU = 0 }, []string{"tun.mtu"}},
		{"queues zero", func(c *Config) { c.Queues = 0 }, []string{"tun.queues"}},
		{"queues high", func(c *Config) { c.Queues = 17 }, []string{"tun.queues"}},
		{"bad addresses", func(c *Config) {
			c.Addresses = []string{"198.18.0.1/24", "198.18.0.1", "198.18.0.1/33", "::ffff:198.18.0.1/120", "0.0.0.0/0", "ff02::1/128", "198.18.0.1/24", "2001:2::1%eth0/64"}
		}, []string{"tun.addresses.1", "tun.addresses.2", "tun.addresses.3", "tun.addresses.4", "tun.addresses.5", "tun.addresses.6", "tun.addresses.7"}},
		{"several", func(c *Config) { c.Name, c.MTU, c.Queues = "", 1, 99 }, []string{"tun.name", "tun.mtu", "tun.queues"}},
	}
	for _, tc := range cases {
		c := ok
		tc.mod(&c)
		if got := keys(c.Validate()); !slices.Equal(got, tc.want) {
			t.Errorf("%s: keys %q, want %q (%v)", tc.name, got, tc.want, c.Validate())
		}
	}
}

func TestRoutingValidate(t *testing.T) {
	ok := RoutingConfig{Steer: []string{"lan0", "lan1"}, Table: 7321, Priority: 7321}
	cases := []struct {
		name string
		mod  func(*RoutingConfig)
		want []string
	}{
		{"valid", func(*RoutingConfig) {}, nil},
		{"no steer", func(r *RoutingConfig) { r.Steer = nil }, nil},
		{"bounds", func(r *RoutingConfig) { r.Table, r.Priority = 1<<31-1, 32765 }, nil},
		{"low bounds", func(r *RoutingConfig) { r.Table, r.Priority = 1, 1 }, nil},
		{"bad steer", func(r *RoutingConfig) { r.Steer = []string{"lan0", "", "lan0", "x/y"} }, []string{"routing.steer.1", "routing.steer.2", "routing.steer.3"}},
		{"table zero", func(r *RoutingConfig) { r.Table = 0 }, []string{"routing.table"}},
		{"table main", func(r *RoutingConfig) { r.Table = 254 }, []string{"routing.table"}},
		{"table local", func(r *RoutingConfig) { r.Table = 255 }, []string{"routing.table"}},
		{"table default", func(r *RoutingConfig) { r.Table = 253 }, []string{"routing.table"}},
		{"table high", func(r *RoutingConfig) { r.Table = 1 << 31 }, []string{"routing.table"}},
		{"prio zero", func(r *RoutingConfig) { r.Priority = 0 }, []string{"routing.priority"}},
		{"prio main", func(r *RoutingConfig) { r.Priority = 32766 }, []string{"routing.priority"}},
	}
	for _, tc := range cases {
		r := ok
		r.Steer = slices.Clone(ok.Steer)
		tc.mod(&r)
		if got := keys(r.Validate()); !slices.Equal(got, tc.want) {
			t.Errorf("%s: keys %q, want %q (%v)", tc.name, got, tc.want, r.Validate())
		}
	}
}

// FuzzConfigValidate feeds arbitrary names and addresses through
// validation: it must not panic, and whatever it accepts must be usable
// as is (a name the kernel takes verbatim, an address netlink can encode).
func FuzzConfigValidate(f *testing.F) {
	f.Add("tungate0", "198.18.0.1/24")
	f.Add("a/b", "2001:2::1/64")
	f.Add("", "::ffff:1.2.3.4/128")
	f.Fuzz(func(t *testing.T, name, addr string) {
		c := Config{Name: name, MTU: 1500, Queues: 1, Addresses: []string{addr}}
		errs := c.Validate()
		nameOK, addrOK := true, true
		for _, e := range errs {
			switch strings.Join(e.Key, ".") {
			case "tun.name":
				nameOK = false
			case "tun.addresses.0":
				addrOK = false
			default:
				t.Fatalf("unexpected key %v", e.Key)
			}
		}
		if nameOK {
			if len(name) == 0 || len(name) > 15 || strings.ContainsAny(name, "/:% \t\n\x00") {
				t.Fatalf("accepted name %q", name)
			}
		}
		if addrOK {
			p, err := parseAddress(addr)
			if err != nil || !p.IsValid() || p.Addr().Zone() != "" || p.Addr().Is4In6() {
				t.Fatalf("accepted address %q: %v %v", addr, p, err)
			}
		}
	})
}
