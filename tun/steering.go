package tun

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// fallbackMetric ranks the table's unreachable default behind the TUN
// route. The TUN route vanishes with the device; the fallback keeps the
// table from falling through to main then, so steered traffic is refused,
// never forwarded unfiltered (fail closed).
const fallbackMetric = 1<<31 - 1

// Steering is the set of policy-routing rules and routes that send
// forwarded traffic from the steered interfaces into the TUN.
type Steering struct {
	log *slog.Logger

	mu     sync.Mutex      // guards h, rules and routes
	h      *netlink.Handle // bound to the namespace InstallSteering ran in; nil once all is removed
	rules  []netlink.Rule  // installed and not yet removed
	routes []netlink.Route // installed and not yet removed
}

// InstallSteering routes traffic arriving on each interface in cfg.Steer
// into the TUN tunName, for IPv4 and IPv6:
//
//	ip rule add iif <if> lookup <table> priority <priority>
//	ip route add default dev <tun> table <table>
//	ip route add unreachable default metric 2147483647 table <table>
//
// Rules with the same table and priority and every route in the table are
// leftovers of an earlier run and are replaced. Routes go in before rules,
// so there is no moment when a rule points at an empty table. The TUN must
// be up (Open brings it up).
//
// InstallSteering acts on the calling thread's network namespace; Remove
// acts on that same namespace from any thread.
func InstallSteering(cfg RoutingConfig, tunName string, log *slog.Logger) (*Steering, error) {
	if err := cfg.Validate().Err(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if len(cfg.Steer) == 0 {
		log.Info("routing.steer is empty: leaving routing to the operator")
		return &Steering{log: log}, nil
	}
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("steering: netlink: %w", err)
	}
	s := &Steering{log: log, h: h}
	if err := s.install(cfg, tunName); err != nil {
		if rerr := s.Remove(); rerr != nil {
			// Left for the next start to replace as stale.
			err = errors.Join(err, fmt.Errorf("undo partial steering: %w", rerr))
			h.Close()
		}
		return nil, err
	}
	log.Info("steering installed", "steer", cfg.Steer, "tun", tunName, "table", cfg.Table, "priority", cfg.Priority)
	return s, nil
}

func (s *Steering) install(cfg RoutingConfig, tunName string) error {
	tun, err := s.h.LinkByName(tunName)
	if err != nil {
		return fmt.Errorf("steering: TUN %q: %w", tunName, err)
	}
	if tun.Attrs().Flags&net.FlagUp == 0 {
		return fmt.Errorf("steering: TUN %q is down; open it before installing steering", tunName)
	}
	var missing []error
	for _, name := range cfg.Steer {
		if name == tunName {
			missing = append(missing, fmt.Errorf("routing.steer: %q is the TUN itself", name))
			continue
		}
		if _, err := s.h.LinkByName(name); err != nil {
			if isLinkNotFound(err) {
				err = fmt.Errorf("routing.steer: interface %q does not exist in this network namespace", name)
			}
			missing = append(missing, err)
		}
	}
	if len(missing) > 0 {
		return errors.Join(missing...)
	}

	families := []int{netlink.FAMILY_V4}
	if _, err := os.Stat("/proc/sys/net/ipv6"); err == nil {
		families = append(families, netlink.FAMILY_V6)
	} else {
		s.log.Warn("IPv6 is not available: steering IPv4 only")
	}
	if err := s.removeStale(cfg, families); err != nil {
		return err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	for _, fam := range families {
		for _, r := range tableRoutes(fam, cfg.Table, tun.Attrs().Index) {
			if err := s.h.RouteAdd(&r); err != nil {
				return fmt.Errorf("steering: add route %s: %w", r, err)
			}
			s.routes = append(s.routes, r)
		}
	}
	for _, fam := range families {
		for _, name := range cfg.Steer {
			r := netlink.NewRule()
			r.Family = fam
			r.IifName = name
			r.Table = cfg.Table
			r.Priority = cfg.Priority
			if err := s.h.RuleAdd(r); err != nil {
				return fmt.Errorf("steering: add rule iif %s lookup %d priority %d: %w", name, cfg.Table, cfg.Priority, err)
			}
			s.rules = append(s.rules, *r)
		}
	}
	return nil
}

// tableRoutes are the routes of one family in the steering table.
func tableRoutes(family, table, tunIndex int) []netlink.Route {
	dst := &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
	scope := netlink.SCOPE_LINK // what ip(8) picks for a v4 route without gateway
	if family == netlink.FAMILY_V6 {
		dst = &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
		scope = netlink.SCOPE_UNIVERSE
	}
	return []netlink.Route{
		{LinkIndex: tunIndex, Dst: dst, Table: table, Scope: scope},
		{Dst: dst, Table: table, Type: unix.RTN_UNREACHABLE, Priority: fallbackMetric},
	}
}

// removeStale deletes what an earlier run may have left: rules with our
// table and priority, and every route in our table.
func (s *Steering) removeStale(cfg RoutingConfig, families []int) error {
	_, err := s.removeStaleCount(cfg, families)
	return err
}

// removeStaleCount is removeStale, counting what it removed.
func (s *Steering) removeStaleCount(cfg RoutingConfig, families []int) (removed int, _ error) {
	for _, fam := range families {
		filter := &netlink.Rule{Table: cfg.Table, Priority: cfg.Priority}
		rules, err := s.h.RuleListFiltered(fam, filter, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PRIORITY)
		if err != nil {
			return removed, fmt.Errorf("steering: list rules: %w", err)
		}
		for i := range rules {
			if err := s.h.RuleDel(&rules[i]); err != nil && !isGone(err) {
				return removed, fmt.Errorf("steering: remove stale rule %s: %w", rules[i], err)
			}
			removed++
			s.log.Info("removed stale steering rule", "rule", rules[i].String(), "iif", rules[i].IifName)
		}
		routes, err := s.h.RouteListFiltered(fam, &netlink.Route{Table: cfg.Table}, netlink.RT_FILTER_TABLE)
		if err != nil {
			return removed, fmt.Errorf("steering: list routes in table %d: %w", cfg.Table, err)
		}
		for i := range routes {
			if err := s.h.RouteDel(&routes[i]); err != nil && !isGone(err) {
				return removed, fmt.Errorf("steering: remove stale route %s: %w", routes[i], err)
			}
			removed++
			s.log.Info("removed stale steering route", "route", routes[i].String(), "table", cfg.Table)
		}
	}
	return removed, nil
}

// Remove deletes the rules, then the routes, that InstallSteering added.
// Entries already gone (the TUN route disappears with the device) count as
// removed. What fails to delete is kept for a later call and reported as
// one joined error; once everything is gone, further calls return nil.
func (s *Steering) Remove() error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.h == nil {
		return nil
	}
	var errs []error
	var rules []netlink.Rule
	for i := range s.rules {
		if err := s.h.RuleDel(&s.rules[i]); err != nil && !isGone(err) {
			errs = append(errs, fmt.Errorf("remove rule iif %s lookup %d: %w", s.rules[i].IifName, s.rules[i].Table, err))
			rules = append(rules, s.rules[i])
		}
	}
	var routes []netlink.Route
	for i := range s.routes {
		if err := s.h.RouteDel(&s.routes[i]); err != nil && !isGone(err) {
			errs = append(errs, fmt.Errorf("remove route %s: %w", s.routes[i], err))
			routes = append(routes, s.routes[i])
		}
	}
	s.rules, s.routes = rules, routes
	if len(errs) > 0 {
		return fmt.Errorf("steering: %w", errors.Join(errs...))
	}
	s.h.Close()
	s.h = nil
	return nil
}

// Leave ends the running gateway's hold on its steering without removing
// it: the rules stay and the table keeps its unreachable default (the TUN
// route goes with the device), so while tungate is stopped nothing is
// forwarded between the steered interfaces and the rest unfiltered: it is
// refused (fail closed). The next start replaces it as stale;
// RemoveSteering takes it away for good.
func (s *Steering) Leave() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.h == nil {
		return
	}
	if len(s.rules) > 0 {
		s.log.Info("steering left in place: steered traffic is refused until tungate runs again (tungate cleanup removes it)",
			"rules", len(s.rules), "table", s.rules[0].Table)
	}
	s.h.Close()
	s.h, s.rules, s.routes = nil, nil, nil
}

// RemoveSteering deletes every rule with cfg's table and priority and every
// route in cfg's table, for IPv4 and IPv6, in the calling thread's network
// namespace: what a stopped or crashed gateway left (tungate cleanup). It
// reports how many it removed.
func RemoveSteering(cfg RoutingConfig, log *slog.Logger) (int, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return 0, fmt.Errorf("steering: netlink: %w", err)
	}
	defer h.Close()
	s := &Steering{log: log, h: h}
	families := []int{netlink.FAMILY_V4}
	if _, err := os.Stat("/proc/sys/net/ipv6"); err == nil {
		families = append(families, netlink.FAMILY_V6)
	}
	return s.removeStaleCount(cfg, families)
}

// isGone reports the errors netlink gives for deleting something that no
// longer exists.
func isGone(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENODEV)
}
