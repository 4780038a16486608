package demo

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/tungate/tungate/internal/lab"
)

// Row is one line of the demo's table.
type Row struct {
	Name     string // what was tried
	Expected string // what configs/demo.toml should make the client see
	Observed string // what the client saw
	OK       bool   // Observed is one of the accepted outcomes
}

// Check is one probe of the scenario and the outcomes that count as right.
type Check struct {
	Name   string
	Accept []string // first is the one expected; any of them passes
	Probe  func(ctx context.Context, l *lab.Lab, srv *Servers) string
}

// Expected describes Accept for the table.
func (c Check) Expected() string { return strings.Join(c.Accept, " or ") }

// Run runs the probe and grades it.
func (c Check) Run(ctx context.Context, l *lab.Lab, srv *Servers) Row {
	obs := c.Probe(ctx, l, srv)
	return Row{Name: c.Name, Expected: c.Expected(), Observed: obs, OK: slices.Contains(c.Accept, obs)}
}

const (
	connectTimeout = 2 * time.Second // the dropped port's row waits this long
	requestTimeout = 3 * time.Second
	// jndiSettle is how long the server is given to show it received the
	// blocked request after the client's side has already ended.
	jndiSettle = 300 * time.Millisecond
)

// Names of the checks, for tests that pick one row.
const (
	CheckHTTPv4       = "http GET 198.18.2.2:80"
	CheckRejectTCP    = "tcp connect :8081"
	CheckDropTCP      = "tcp connect :8082"
	CheckJNDI         = "GET /?q=${jndi:ldap://x} :80"
	CheckUDPEcho      = "udp echo :5353"
	CheckUDPBlocked   = "udp :5354"
	CheckPingV4       = "ping 198.18.2.2"
	CheckHTTPv6       = "http GET [2001:2:0:2::2]:80"
	CheckPingV6       = "ping 2001:2:0:2::2"
	CheckSNIAllowed   = "tls SNI " + AllowedName + " :443"
	CheckSNIBlocked   = "tls SNI " + BlockedName + " :443"
	CheckHTTPHost     = "http GET Host: " + BlockedName + " :80"
	CheckDNSBlocked   = "dns A www." + BlockedName + " :53"
	CheckDNSAllowed   = "dns A www." + AllowedName + " :53"
	jndiRequestFormat = "GET /?q=${jndi:ldap://x} HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
)

// jndiSeen and jndiUnseen are the two observations of the JNDI row.
const (
	jndiUnseen = "; server saw nothing"
	jndiSeen   = "; server got it"
)

// Checks returns the scenario configs/demo.toml is written for, in order.
func Checks() []Check {
	srv4 := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(lab.ServerV4, port) }
	srv6 := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(lab.ServerV6, port) }
	return []Check{
		{CheckHTTPv4, []string{"200"}, func(ctx context.Context, l *lab.Lab, _ *Servers) string {
			return httpGet(ctx, l.Client, srv4(PortHTTP), requestTimeout)
		}},
		{CheckRejectTCP, []string{Refused}, func(ctx context.Context, l *lab.Lab, _ *Servers) string {
			return tcpConnect(ctx, l.Client, srv4(PortTCPReject), connectTimeout)
		}},
		{CheckDropTCP, []string{Timeout}, func(ctx context.Context, l *lab.Lab, _ *Servers) string {
			return tcpConnect(ctx, l.Client, srv4(PortTCPDrop), connectTimeout)
		}},
		{CheckJNDI, []string{Reset + jndiUnseen}, func(ctx context.Context, l *lab.Lab, srv *Servers) string {
			dst := srv4(PortHTTP)
			obs := rawRequest(ctx, l.Client, dst, fmt.Sprintf(jndiRequestFormat, dst.Addr()), requestTimeout)
			select {
			case <-time.After(jndiSettle):
			case <-ctx.Done():
			}
			if srv.SawJNDI() {
				return obs + jndiSeen
			}
			return obs + jndiUnseen
		}},
		{CheckUDPEcho, []string{Echo}, func(ctx context.Context, l *lab.Lab, _ *Servers) string {
			return udpEcho(ctx, l.Client, srv4(PortUDPEcho), 3, 700*time.Millisecond)
		}},
		{CheckUDPBlocked, []string{Refused, NoReply}, func(ctx context.Context, l *lab.Lab, _ *Servers) string {
			return udpEcho(ctx, l.Client, srv4(PortUDPBlocked), 1, time.Second)
		}},
		{CheckPingV4, []string{Reply}, func(ctx context.Context, l *lab.Lab, _ *Servers) string {
			return ping(ctx, l.Client, lab.ServerV4, 2*time.Second)
		}},
		{CheckHTTPv6, []string{"200"}, func(ctx context.Context, l *lab.Lab, _ *Servers) string {
			return httpGet(ctx, l.Client, srv6(PortHTTP), requestTimeout)
		}},
		{CheckPingV6, []string{Reply}, func(ctx context.Context, l *lab.Lab, _ *Servers) string {
			return ping(ctx, l.Client, lab.ServerV6, 2*time.Second)
		}},
		{CheckSNIAllowed, []string{Handshake}, func(ctx context.Context, l *lab.Lab, _ *Servers) string {
			return tlsHandshake(ctx, l.Client, srv4(PortTLS), AllowedName, requestTimeout)
		}},
		{CheckSNIBlocked, []string{Reset}, func(ctx context.Context, l *lab.Lab, _ *Servers) string {
			return tlsHandshake(ctx, l.Client, srv4(PortTLS), BlockedName, requestTimeout)
		}},
		{CheckHTTPHost, []string{"403"}, func(ctx context.Context, l *lab.Lab, _ *Servers) string {
			return httpGetHost(ctx, l.Client, srv4(PortHTTP), BlockedName, requestTimeout)
		}},
		{CheckDNSBlocked, []string{NXDomain}, func(ctx context.Context, l *lab.Lab, _ *Servers) string {
			return dnsLookup(ctx, l.Client, srv4(PortDNS), "www."+BlockedName, time.Second)
		}},
		{CheckDNSAllowed, []string{Answer}, func(ctx context.Context, l *lab.Lab, _ *Servers) string {
			return dnsLookup(ctx, l.Client, srv4(PortDNS), "www."+AllowedName, time.Second)
		}},
	}
}

// RunScenario starts the demo's servers in the lab's server namespace, runs
// every check from the client namespace, and stops the servers again. It
// stops early, with fewer rows, when ctx ends. The
// gateway, if any, is the caller's: without one the lab forwards in the
// kernel and the blocking rows fail, which is how the checks are tested.
func RunScenario(ctx context.Context, l *lab.Lab) []Row {
	srv, err := StartServers(l.Server)
	if err != nil {
		return []Row{{Name: "start servers", Expected: "listening", Observed: err.Error()}}
	}
	defer srv.Close()
	var rows []Row
	for _, c := range Checks() {
		if ctx.Err() != nil {
			// Interrupted: the remaining rows would only say so.
			break
		}
		rows = append(rows, c.Run(ctx, l, srv))
	}
	return rows
}

// Failed counts the rows that are not OK.
func Failed(rows []Row) int {
	n := 0
	for _, r := range rows {
		if !r.OK {
			n++
		}
	}
	return n
}
