package control

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"

	"github.com/tungate/tungate/conntrack"
)

// FlowFilter selects flows for OpConntrackList and OpConntrackFlush, in
// the spirit of conntrack(8)'s -p, -s, -d, --sport, --dport and --state.
// Every field given must match; an empty filter (or none: older clients
// send no arguments) selects every flow. Addresses and ports are those of
// the original direction, as the listing shows them first.
type FlowFilter struct {
	Proto string `json:"proto,omitempty"` // tcp, udp, icmp or icmpv6
	Src   string `json:"src,omitempty"`   // IP, IP/PREFIX or IP:PORT ([IPv6]:PORT)
	Dst   string `json:"dst,omitempty"`   // as Src
	State string `json:"state,omitempty"` // TCP state name, any case (ESTABLISHED, SYN_SENT, ...)
	Rule  string `json:"rule,omitempty"`  // the deciding rule's name; "default" for defaults.policy
}

// flowMatch is a parsed FlowFilter.
type flowMatch struct {
	proto             uint8 // 0: any
	src, dst          endpointMatch
	state, rule       string
	stateSet, ruleSet bool
}

// endpointMatch is an address prefix and, when port is set, one port.
type endpointMatch struct {
	prefix  netip.Prefix // invalid: any
	port    uint16
	hasPort bool
}

// Check reports what is wrong with f, naming the field, so a client can
// refuse a bad filter before asking the gateway.
func (f FlowFilter) Check() error {
	_, err := f.compile()
	return err
}

// compile checks f and returns its matcher; errors name the field.
func (f FlowFilter) compile() (flowMatch, error) {
	var m flowMatch
	if f.Proto != "" {
		n, ok := protoNumber(f.Proto)
		if !ok {
			return m, fmt.Errorf("proto: unknown protocol %q (want tcp, udp, icmp or icmpv6)", f.Proto)
		}
		m.proto = n
	}
	var err error
	if m.src, err = parseEndpointMatch(f.Src); err != nil {
		return m, fmt.Errorf("src: %w", err)
	}
	if m.dst, err = parseEndpointMatch(f.Dst); err != nil {
		return m, fmt.Errorf("dst: %w", err)
	}
	if f.State != "" {
		m.state, m.stateSet = strings.ToUpper(f.State), true
		if !conntrack.IsTCPStateName(m.state) {
			return m, fmt.Errorf("state: %q is not a TCP state (ESTABLISHED, SYN_SENT, SYN_RECV, FIN_WAIT, CLOSE_WAIT, LAST_ACK, TIME_WAIT, CLOSE, SYN_SENT2)", f.State)
		}
	}
	m.rule, m.ruleSet = f.Rule, f.Rule != ""
	return m, nil
}

// parseEndpointMatch accepts "", IP, IP/PREFIX or IP:PORT. IPv4-mapped
// IPv6 addresses and prefixes stand for their IPv4 form, as the listing
// shows IPv4 flows.
func parseEndpointMatch(s string) (endpointMatch, error) {
	var e endpointMatch
	if s == "" {
		return e, nil
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s) // refuses zones
		if err != nil {
			return e, fmt.Errorf("%q is not IP/PREFIX", s)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		e.prefix = p.Masked()
		return e, nil
	}
	var a netip.Addr
	if ap, err := netip.ParseAddrPort(s); err == nil {
		a, e.port, e.hasPort = ap.Addr(), ap.Port(), true
	} else if a, err = netip.ParseAddr(s); err != nil {
		return e, fmt.Errorf("%q is not an IP, IP/PREFIX or IP:PORT", s)
	}
	if a.Zone() != "" {
		return e, fmt.Errorf("%q: zones are not tracked", s)
	}
	a = a.Unmap()
	e.prefix = netip.PrefixFrom(a, a.BitLen())
	return e, nil
}

func (e endpointMatch) matches(t Tuple, src bool) bool {
	addr, port := t.Dst, t.DstPort
	if src {
		addr, port = t.Src, t.SrcPort
	}
	if e.prefix.IsValid() && !e.prefix.Contains(addr) {
		return false
	}
	return !e.hasPort || port == e.port
}

// matches reports whether f, as listed, is selected.
func (m *flowMatch) matches(f *Flow) bool {
	return (m.proto == 0 || f.ProtoNum == m.proto) &&
		m.src.matches(f.Orig, true) && m.dst.matches(f.Orig, false) &&
		(!m.stateSet || f.State == m.state) &&
		(!m.ruleSet || f.Rule == m.rule)
}

// protoNumber is the IANA number of a protocol name tungate tracks.
func protoNumber(name string) (uint8, bool) {
	for n, s := range protoNames {
		if strings.EqualFold(s, name) {
			return n, true
		}
	}
	return 0, false
}

// decodeFilter reads a list or flush request's arguments; none is an
// empty filter.
func decodeFilter(raw []byte) (flowMatch, error) {
	var f FlowFilter
	if len(raw) > 0 && string(raw) != "null" {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			return flowMatch{}, fmt.Errorf("bad arguments: %w", err)
		}
	}
	return f.compile()
}
