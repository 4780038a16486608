// Package lab builds the throw-away test bed that tungate's demo, end-to-end
// tests and benchmarks run in: three network namespaces (client, gateway,
// server) joined by veth pairs, with addresses from the benchmarking ranges
// only. It lives outside test/ because `tungate demo` ships it in the binary.
//
// Nothing here touches the root namespace: every interface is created inside
// a namespace the lab owns, and Close deletes those namespaces again.
package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// Addresses of the lab. The client and the server see the gateway as their
// next hop; the gateway's lan0 faces the client, wan0 the server.
var (
	ClientV4     = netip.MustParseAddr("198.18.1.2")
	ClientV6     = netip.MustParseAddr("2001:2:0:1::2")
	GatewayLANV4 = netip.MustParseAddr("198.18.1.1")
	GatewayLANV6 = netip.MustParseAddr("2001:2:0:1::1")
	GatewayWANV4 = netip.MustParseAddr("198.18.2.1")
	GatewayWANV6 = netip.MustParseAddr("2001:2:0:2::1")
	ServerV4     = netip.MustParseAddr("198.18.2.2")
	ServerV6     = netip.MustParseAddr("2001:2:0:2::2")

	ClientNetV4 = netip.MustParsePrefix("198.18.1.0/24")
	ClientNetV6 = netip.MustParsePrefix("2001:2:0:1::/64")
	ServerNetV4 = netip.MustParsePrefix("198.18.2.0/24")
	ServerNetV6 = netip.MustParsePrefix("2001:2:0:2::/64")
)

// Interface names inside the namespaces.
const (
	ClientIf     = "eth0" // in the client namespace
	ServerIf     = "eth0" // in the server namespace
	GatewayLANIf = "lan0" // in the gateway namespace, peer of the client's eth0
	GatewayWANIf = "wan0" // in the gateway namespace, peer of the server's eth0
)

// Options tune New. The zero value is ready to use.
type Options struct {
	// Prefix starts every namespace name; default "tg". Names are
	// PREFIX-c-SUFFIX, PREFIX-g-SUFFIX, PREFIX-s-SUFFIX with a random
	// 8-hex-digit SUFFIX.
	Prefix string
	// Log receives setup and teardown steps at debug level; nil discards.
	Log *slog.Logger
	// GatewayOutput, when set, receives a copy of every line the gateway
	// started by StartGateway writes.
	GatewayOutput io.Writer
	// ReadyTimeout bounds StartGateway's wait for the "ready" log line;
	// default 10s.
	ReadyTimeout time.Duration
}

// Lab is one client–gateway–server test bed.
type Lab struct {
	Client, Gateway, Server NS
	// Suffix is the random part shared by the three namespace names.
	Suffix string

	opts Options
	log  *slog.Logger

	mu       sync.Mutex // guards created, gateways, closed
	created  []NS       // namespaces that exist, in creation order
	gateways []*Gateway // started by StartGateway; stopped by Close
	closed   bool
}

// New builds the three namespaces and their links. On any error it removes
// whatever it already created before returning.
func New(ctx context.Context, opts Options) (*Lab, error) {
	if opts.Prefix == "" {
		opts.Prefix = "tg"
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = 10 * time.Second
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, fmt.Errorf("lab: iproute2 is needed to build network namespaces: %w", err)
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("lab: random suffix: %w", err)
	}
	suffix := hex.EncodeToString(b[:])
	l := &Lab{
		Client:  NS{Name: opts.Prefix + "-c-" + suffix},
		Gateway: NS{Name: opts.Prefix + "-g-" + suffix},
		Server:  NS{Name: opts.Prefix + "-s-" + suffix},
		Suffix:  suffix,
		opts:    opts,
		log:     log,
	}
	if err := l.build(ctx); err != nil {
		if cerr := l.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return nil, err
	}
	log.Debug("lab up", "client", l.Client.Name, "gateway", l.Gateway.Name, "server", l.Server.Name)
	return l, nil
}

func (l *Lab) build(ctx context.Context) error {
	for _, ns := range []NS{l.Client, l.Gateway, l.Server} {
		if err := l.ip(ctx, "netns", "add", ns.Name); err != nil {
			return err
		}
		l.mu.Lock()
		l.created = append(l.created, ns)
		l.mu.Unlock()
		// No duplicate address detection on the links made below: nothing
		// else shares them, and tentative link-local addresses would hold
		// the first IPv6 packets back for seconds.
		if err := ns.Do(func() error {
			return writeSysctl("net/ipv6/conf/default/accept_dad", "0")
		}); err != nil {
			return err
		}
	}
	c, g, s := l.Client.Name, l.Gateway.Name, l.Server.Name
	steps := [][]string{
		// The veths are born inside the namespaces: the root namespace never
		// holds either end, not even for a moment.
		{"-n", g, "link", "add", GatewayLANIf, "type", "veth", "peer", "name", ClientIf, "netns", c},
		{"-n", g, "link", "add", GatewayWANIf, "type", "veth", "peer", "name", ServerIf, "netns", s},

		{"-n", c, "link", "set", "lo", "up"},
		{"-n", g, "link", "set", "lo", "up"},
		{"-n", s, "link", "set", "lo", "up"},

		{"-n", c, "addr", "add", pfx(ClientV4, ClientNetV4), "dev", ClientIf},
		{"-n", c, "addr", "add", pfx(ClientV6, ClientNetV6), "dev", ClientIf, "nodad"},
		{"-n", c, "link", "set", ClientIf, "up"},
		{"-n", c, "-4", "route", "add", "default", "via", GatewayLANV4.String()},
		{"-n", c, "-6", "route", "add", "default", "via", GatewayLANV6.String()},

		{"-n", g, "addr", "add", pfx(GatewayLANV4, ClientNetV4), "dev", GatewayLANIf},
		{"-n", g, "addr", "add", pfx(GatewayLANV6, ClientNetV6), "dev", GatewayLANIf, "nodad"},
		{"-n", g, "addr", "add", pfx(GatewayWANV4, ServerNetV4), "dev", GatewayWANIf},
		{"-n", g, "addr", "add", pfx(GatewayWANV6, ServerNetV6), "dev", GatewayWANIf, "nodad"},
		{"-n", g, "link", "set", GatewayLANIf, "up"},
		{"-n", g, "link", "set", GatewayWANIf, "up"},

		{"-n", s, "addr", "add", pfx(ServerV4, ServerNetV4), "dev", ServerIf},
		{"-n", s, "addr", "add", pfx(ServerV6, ServerNetV6), "dev", ServerIf, "nodad"},
		{"-n", s, "link", "set", ServerIf, "up"},
		{"-n", s, "-4", "route", "add", "default", "via", GatewayWANV4.String()},
		{"-n", s, "-6", "route", "add", "default", "via", GatewayWANV6.String()},
	}
	for i, args := range steps {
		if err := l.ip(ctx, args...); err != nil {
			return err
		}
		if failAfterStep != nil {
			if err := failAfterStep(i); err != nil {
				return err
			}
		}
	}
	// Set after the links exist so that all.forwarding reaches lan0 and wan0.
	if err := l.Gateway.Do(func() error {
		for _, k := range []string{"net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"} {
			if err := writeSysctl(k, "1"); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	return l.waitLinks(ctx)
}

// waitLinks returns once each link carries traffic both ways in both
// families. A fresh veth drops the first IPv6 neighbour solicitation for
// about a second; without this wait that second would be charged to
// whatever runs first on the lab, the gateway under test included.
func (l *Lab) waitLinks(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	probes := []struct {
		from NS
		to   netip.Addr
	}{
		{l.Client, GatewayLANV4}, {l.Client, GatewayLANV6},
		{l.Server, GatewayWANV4}, {l.Server, GatewayWANV6},
	}
	errs := make([]error, len(probes))
	var wg sync.WaitGroup
	for i, p := range probes {
		wg.Go(func() {
			for {
				err := p.from.Ping(ctx, p.to, 250*time.Millisecond)
				if err == nil || ctx.Err() != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("lab: links not ready: %w", err)
	}
	return nil
}

// failAfterStep lets tests break setup half-way; nil outside tests.
var failAfterStep func(step int) error

func pfx(a netip.Addr, n netip.Prefix) string {
	return netip.PrefixFrom(a, n.Bits()).String()
}

// ip runs one iproute2 command, bounded so a wedged call cannot hang setup.
func (l *Lab) ip(ctx context.Context, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	l.log.Debug("ip", "args", strings.Join(args, " "), "err", err)
	if err != nil {
		return fmt.Errorf("lab: ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Names returns the names of the namespaces that currently exist.
func (l *Lab) Names() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	names := make([]string, len(l.created))
	for i, ns := range l.created {
		names[i] = ns.Name
	}
	return names
}

// Close stops any gateway still running and deletes the namespaces, which
// deletes their veths with them. It is idempotent and safe after a partial
// New. A namespace stays alive in the kernel while a socket created in it is
// open, so callers close their sockets first.
func (l *Lab) Close() error {
	l.mu.Lock()
	gws := l.gateways
	l.gateways = nil
	created := l.created
	l.created = nil
	l.closed = true
	l.mu.Unlock()

	var errs []error
	for _, gw := range gws {
		if err := gw.Stop(5 * time.Second); err != nil {
			l.log.Debug("stopping gateway at close", "err", err)
		}
	}
	// Teardown must run even when the caller's context is already done.
	ctx := context.Background()
	for i := len(created) - 1; i >= 0; i-- {
		if err := l.ip(ctx, "netns", "del", created[i].Name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
