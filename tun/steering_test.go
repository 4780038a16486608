package tun

import (
	"errors"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

const (
	testTable = 7321
	testPrio  = 7321
)

// addVeth creates a veth pair, both ends up, in the test namespace.
func addVeth(t *testing.T, name, peer string) {
	t.Helper()
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: peer}); err != nil {
		t.Fatalf("add veth %s: %v", name, err)
	}
	for _, n := range []string{name, peer} {
		l, err := netlink.LinkByName(n)
		if err != nil {
			t.Fatal(err)
		}
		if err := netlink.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
}

// ruleSet lists "family iif table prio" for every rule with table or
// priority in ours.
func ruleSet(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rules, err := netlink.RuleList(fam)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rules {
			if r.Table == testTable || r.Priority == testPrio {
				out = append(out, famName(fam)+" iif="+r.IifName+" table="+strconv.Itoa(r.Table)+" prio="+strconv.Itoa(r.Priority))
			}
		}
	}
	sort.Strings(out)
	return out
}

// tableRouteSet lists "family dst type dev metric" for the routes in our
// table.
func tableRouteSet(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		routes, err := netlink.RouteListFiltered(fam, &netlink.Route{Table: testTable}, netlink.RT_FILTER_TABLE)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range routes {
			dev := "-"
			if r.Type != unix.RTN_UNREACHABLE && r.LinkIndex > 0 {
				if l, err := netlink.LinkByIndex(r.LinkIndex); err == nil {
					dev = l.Attrs().Name
				}
			}
			dst := "default"
			if r.Dst != nil {
				if ones, _ := r.Dst.Mask.Size(); ones != 0 {
					dst = r.Dst.String()
				}
			}
			typ := "unicast"
			if r.Type == unix.RTN_UNREACHABLE {
				typ = "unreachable"
			}
			out = append(out, famName(fam)+" "+dst+" "+typ+" dev="+dev+" metric="+strconv.Itoa(r.Priority))
		}
	}
	sort.Strings(out)
	return out
}

func famName(f int) string {
	if f == netlink.FAMILY_V6 {
		return "v6"
	}
	return "v4"
}

func wantSet(t *testing.T, what string, got, want []string) {
	t.Helper()
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got  %q\n want %q", what, got, want)
	}
}

func steeredRules(ifs ...string) []string {
	var out []string
	for _, fam := range []string{"v4", "v6"} {
		for _, i := range ifs {
			out = append(out, fam+" iif="+i+" table=7321 prio=7321")
		}
	}
	return out
}

func steeredRoutes(tun string) []string {
	return []string{
		"v4 default unicast dev=" + tun + " metric=0",
		"v4 default unreachable dev=- metric=2147483647",
		"v6 default unicast dev=" + tun + " metric=1024",
		"v6 default unreachable dev=- metric=2147483647",
	}
}

func TestSteeringInstallRemove(t *testing.T) {
	enterNetns(t)
	addVeth(t, "lan0", "lan0p")
	addVeth(t, "lan1", "lan1p")
	ifc := openTest(t, Config{Name: "tgst0", MTU: 1500, Queues: 1})
	cfg := RoutingConfig{Steer: []string{"lan0", "lan1"}, Table: testTable, Priority: testPrio}

	s, err := InstallSteering(cfg, ifc.Name(), testLogger(t))
	if err != nil {
		t.Fatalf("InstallSteering: %v", err)
	}
	t.Cleanup(func() { s.Remove() })
	wantSet(t, "rules after install", ruleSet(t), steeredRules("lan0", "lan1"))
	wantSet(t, "routes after install", tableRouteSet(t), steeredRoutes("tgst0"))

	if err := s.Remove(); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	wantSet(t, "rules after Remove", ruleSet(t), nil)
	wantSet(t, "routes after Remove", tableRouteSet(t), nil)
	if err := s.Remove(); err != nil {
		t.Errorf("second Remove: %v", err)
	}
}

// TestSteeringFailsClosed follows a forwarded packet's route lookup:
// into the TUN while it is up, refused (not forwarded by the main table)
// once the TUN is gone but the rules remain, as after a crash.
func TestSteeringFailsClosed(t *testing.T) {
	enterNetns(t)
	if err := writeSysctl("/proc/sys/net/ipv4/ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
	addVeth(t, "lan0", "lan0p")
	ifc := openTest(t, Config{Name: "tgfc0", MTU: 1500, Queues: 1})
	tunIndex := mustLink(t, "tgfc0").Attrs().Index
	// A main-table route that unsteered traffic would take.
	wan := mustLink(t, "lan0p")
	if err := netlink.RouteAdd(&netlink.Route{LinkIndex: wan.Attrs().Index, Dst: mustCIDR(t, "198.18.50.0/24")}); err != nil {
		t.Fatal(err)
	}
	s, err := InstallSteering(RoutingConfig{Steer: []string{"lan0"}, Table: testTable, Priority: testPrio}, "tgfc0", testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Remove() })

	lookup := func() ([]netlink.Route, error) {
		return netlink.RouteGetWithOptions(net.ParseIP("198.18.50.1"), &netlink.RouteGetOptions{Iif: "lan0", SrcAddr: net.ParseIP("198.18.10.2")})
	}
	routes, err := lookup()
	if err != nil || len(routes) != 1 || routes[0].LinkIndex != tunIndex {
		t.Fatalf("steered lookup: %+v, %v; want dev tgfc0 (index %d)", routes, err, tunIndex)
	}
	if err := ifc.Close(); err != nil {
		t.Fatal(err)
	}
	if routes, err := lookup(); !errors.Is(err, unix.EHOSTUNREACH) {
		t.Errorf("lookup with the TUN gone: %+v, %v; want EHOSTUNREACH", routes, err)
	}
	if err := s.Remove(); err != nil {
		t.Fatalf("Remove after the TUN is gone: %v", err)
	}
	wantSet(t, "rules after Remove", ruleSet(t), nil)
	wantSet(t, "routes after Remove", tableRouteSet(t), nil)
	if routes, err := lookup(); err != nil || len(routes) != 1 || routes[0].LinkIndex != wan.Attrs().Index {
		t.Errorf("lookup after Remove: %+v, %v; want the main table's route via lan0p", routes, err)
	}
}

func TestSteeringReplacesStale(t *testing.T) {
	enterNetns(t)
	addVeth(t, "lan0", "lan0p")
	ifc := openTest(t, Config{Name: "tgsl0", MTU: 1500, Queues: 1})

	// Leftovers of an earlier run: rules with our table and priority (one
	// for an interface no longer steered) and routes in our table.
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		for _, iif := range []string{"lan0", "gone0"} {
			r := netlink.NewRule()
			r.Family, r.IifName, r.Table, r.Priority = fam, iif, testTable, testPrio
			if err := netlink.RuleAdd(r); err != nil {
				t.Fatalf("stale rule: %v", err)
			}
		}
	}
	for _, dst := range []string{"198.18.99.0/24", "2001:2:99::/48"} {
		if err := netlink.RouteAdd(&netlink.Route{Dst: mustCIDR(t, dst), Table: testTable, Type: unix.RTN_UNREACHABLE}); err != nil {
			t.Fatalf("stale route: %v", err)
		}
	}
	// Not ours: same table, other priority; same priority, other table.
	foreign := []*netlink.Rule{netlink.NewRule(), netlink.NewRule()}
	foreign[0].IifName, foreign[0].Table, foreign[0].Priority = "lan0", testTable, 100
	foreign[1].IifName, foreign[1].Table, foreign[1].Priority = "lan0", 100, testPrio
	for _, r := range foreign {
		if err := netlink.RuleAdd(r); err != nil {
			t.Fatal(err)
		}
	}
	foreignRules := []string{"v4 iif=lan0 table=7321 prio=100", "v4 iif=lan0 table=100 prio=7321"}

	s, err := InstallSteering(RoutingConfig{Steer: []string{"lan0"}, Table: testTable, Priority: testPrio}, ifc.Name(), testLogger(t))
	if err != nil {
		t.Fatalf("InstallSteering over leftovers: %v", err)
	}
	t.Cleanup(func() { s.Remove() })
	wantSet(t, "rules after install", ruleSet(t), append(steeredRules("lan0"), foreignRules...))
	wantSet(t, "routes after install", tableRouteSet(t), steeredRoutes("tgsl0"))

	if err := s.Remove(); err != nil {
		t.Fatal(err)
	}
	wantSet(t, "rules after Remove", ruleSet(t), foreignRules)
}

func TestSteeringErrors(t *testing.T) {
	enterNetns(t)
	addVeth(t, "lan0", "lan0p")
	ifc := openTest(t, Config{Name: "tger0", MTU: 1500, Queues: 1})

	cases := []struct {
		cfg     RoutingConfig
		tun     string
		wantErr []string
	}{
		{RoutingConfig{Steer: []string{"lan0", "nosuch0", "nosuch1"}, Table: testTable, Priority: testPrio}, "tger0", []string{`"nosuch0" does not exist`, `"nosuch1" does not exist`}},
		{RoutingConfig{Steer: []string{"tger0"}, Table: testTable, Priority: testPrio}, "tger0", []string{"the TUN itself"}},
		{RoutingConfig{Steer: []string{"lan0"}, Table: testTable, Priority: testPrio}, "notun0", []string{`TUN "notun0"`}},
		{RoutingConfig{Steer: []string{"lan0"}, Table: 254, Priority: testPrio}, "tger0", []string{"routing.table"}},
	}
	for _, c := range cases {
		s, err := InstallSteering(c.cfg, c.tun, testLogger(t))
		if err == nil {
			s.Remove()
			t.Errorf("InstallSteering(%+v, %q) succeeded", c.cfg, c.tun)
			continue
		}
		for _, w := range c.wantErr {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("InstallSteering(%+v, %q): %v; want it to mention %s", c.cfg, c.tun, err, w)
			}
		}
		wantSet(t, "rules after a failed install", ruleSet(t), nil)
		wantSet(t, "routes after a failed install", tableRouteSet(t), nil)
	}

	// A TUN that is down cannot carry routes: refuse clearly.
	l := mustLink(t, ifc.Name())
	if err := netlink.LinkSetDown(l); err != nil {
		t.Fatal(err)
	}
	if _, err := InstallSteering(RoutingConfig{Steer: []string{"lan0"}, Table: testTable, Priority: testPrio}, ifc.Name(), nil); err == nil || !strings.Contains(err.Error(), "is down") {
		t.Errorf("steering to a down TUN: %v", err)
	}

	s, err := InstallSteering(RoutingConfig{Table: testTable, Priority: testPrio}, ifc.Name(), nil)
	if err != nil {
		t.Fatalf("empty steer: %v", err)
	}
	if err := s.Remove(); err != nil {
		t.Errorf("Remove of empty steering: %v", err)
	}
	var nilSteering *Steering
	if err := nilSteering.Remove(); err != nil {
		t.Errorf("nil Remove: %v", err)
	}
}

func mustLink(t *testing.T, name string) netlink.Link {
	t.Helper()
	l, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func mustCIDR(t *testing.T, s string) *net.IPNet {
	t.Helper()
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSteeringLeaveThenCleanup: a stopping gateway leaves its steering
// (the rules and the unreachable defaults stay once the TUN is gone), and
// RemoveSteering takes all of it away.
func TestSteeringLeaveThenCleanup(t *testing.T) {
	enterNetns(t)
	addVeth(t, "lan0", "lan0p")
	ifc := openTest(t, Config{Name: "tglv0", MTU: 1500, Queues: 1})
	cfg := RoutingConfig{Steer: []string{"lan0"}, Table: testTable, Priority: testPrio}
	s, err := InstallSteering(cfg, ifc.Name(), testLogger(t))
	if err != nil {
		t.Fatalf("InstallSteering: %v", err)
	}
	s.Leave()
	if err := ifc.Close(); err != nil {
		t.Fatal(err)
	}
	wantSet(t, "rules after Leave", ruleSet(t), steeredRules("lan0"))
	wantSet(t, "routes after Leave and the TUN's close", tableRouteSet(t), []string{
		"v4 default unreachable dev=- metric=2147483647",
		"v6 default unreachable dev=- metric=2147483647",
	})
	if err := s.Remove(); err != nil {
		t.Errorf("Remove after Leave: %v", err)
	}
	wantSet(t, "rules after a Remove that follows Leave", ruleSet(t), steeredRules("lan0"))

	n, err := RemoveSteering(cfg, testLogger(t))
	if err != nil || n != 4 {
		t.Fatalf("RemoveSteering: %d, %v; want the 2 rules and 2 routes", n, err)
	}
	wantSet(t, "rules after RemoveSteering", ruleSet(t), nil)
	wantSet(t, "routes after RemoveSteering", tableRouteSet(t), nil)
}
