package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"

	"github.com/tungate/tungate/internal/config"
	"github.com/tungate/tungate/policy"
)

// cmdExplain shows, from the config file alone, how the policy decides one
// flow: each rule in order with why it did or did not match, then the
// deciding step. It exits 0 whatever the verdict; a bad config or bad
// flags exit like check.
func cmdExplain(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	path := fs.String("c", "", "config file")
	proto := fs.String("proto", "tcp", "tcp, udp, icmp, icmpv6 or a protocol number")
	src := fs.String("src", "", "source IP:PORT (or IP for icmp)")
	dst := fs.String("dst", "", "destination IP:PORT (or IP for icmp)")
	icmpType := fs.Int("icmp-type", 8, "ICMP type for icmp flows (8 = echo-request; 128 for icmpv6)")
	ct := fs.String("ct-state", "new", "new, established, related or invalid")
	conns := fs.Int("src-conns", 0, "flows the source already has (for max_conns)")
	payload := fs.String("payload", "", "first bytes the client sends, checked against payload rules")
	sni := fs.String("sni", "", "TLS server name the client sends (tls.sni)")
	host := fs.String("http-host", "", "HTTP Host of the first request (http.host)")
	method := fs.String("http-method", "", "HTTP method (http.method; default GET with --http-host/--http-path)")
	hpath := fs.String("http-path", "", "HTTP request path (http.path; default / with --http-host/--http-method)")
	qname := fs.String("dns-qname", "", "DNS question name of one query (dns.qname)")
	if err := fs.Parse(args); err != nil {
		return &exitError{2, err}
	}
	if *path == "" || *src == "" || *dst == "" {
		return &exitError{2, fmt.Errorf("tungate explain: -c FILE, --src and --dst are required")}
	}
	f, err := parseExplainFlow(*proto, *src, *dst, *icmpType, *ct)
	if err != nil {
		return &exitError{2, fmt.Errorf("tungate explain: %w", err)}
	}
	f.SrcConns = *conns
	cfg, err := config.Load(*path)
	if err != nil {
		return &exitError{1, err}
	}
	var pl []byte
	if isSet(fs, "payload") {
		pl = []byte(*payload)
	}
	fields, err := explainFields(fs, *sni, *host, *method, *hpath, *qname)
	if err != nil {
		return &exitError{2, fmt.Errorf("tungate explain: %w", err)}
	}
	traces := cfg.Compiled.ExplainWith(f, policy.ExplainInput{Payload: pl, Fields: fields})
	fmt.Fprintf(out, "flow: %s %s -> %s ct_state=%s\n", *proto, *src, *dst, f.CtState)
	switch {
	case fields != nil:
		fmt.Fprintf(out, "l7: %s\n", describeFields(fields))
	case pl != nil:
		fmt.Fprintln(out, "l7: fields read from --payload, as the gateway would")
	}
	var verdict policy.RuleTrace
	for _, t := range traces {
		mark := "  "
		switch {
		case t.Decides:
			mark = "=>"
			verdict = t
		case t.Matched:
			mark = " +"
		}
		label := fmt.Sprintf("#%d", t.Rule+1)
		if t.Rule < 0 {
			label = "--"
		}
		act := ""
		if t.Action != "" {
			act = " [" + t.Action + "]"
		}
		fmt.Fprintf(out, "%s %-4s %-24s %s%s\n", mark, label, t.Name, t.Why, act)
	}
	fmt.Fprintf(out, "verdict: %s by %s\n", verdict.Action, verdict.Name)
	return nil
}

// explainFields builds the L7 fields from the flags; nil when none is
// given (then --payload, if any, supplies them).
func explainFields(fs *flag.FlagSet, sni, host, method, path, qname string) (*policy.L7Fields, error) {
	tlsSet := isSet(fs, "sni")
	httpSet := isSet(fs, "http-host") || isSet(fs, "http-method") || isSet(fs, "http-path")
	dnsSet := isSet(fs, "dns-qname")
	n := 0
	for _, b := range []bool{tlsSet, httpSet, dnsSet} {
		if b {
			n++
		}
	}
	switch {
	case n > 1:
		return nil, fmt.Errorf("give L7 fields of one protocol: --sni, --http-* or --dns-qname")
	case tlsSet:
		return &policy.L7Fields{Proto: policy.L7TLS, SNI: []byte(sni)}, nil
	case httpSet:
		if method == "" {
			method = "GET"
		}
		if path == "" {
			path = "/"
		}
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		return &policy.L7Fields{Proto: policy.L7HTTP, Host: []byte(strings.Trim(host, "[]")), Method: []byte(method), Path: []byte(path)}, nil
	case dnsSet:
		return &policy.L7Fields{Proto: policy.L7DNS, QName: []byte(qname)}, nil
	}
	return nil, nil
}

func describeFields(f *policy.L7Fields) string {
	switch f.Proto {
	case policy.L7TLS:
		return fmt.Sprintf("tls.sni=%q", f.SNI)
	case policy.L7HTTP:
		return fmt.Sprintf("http.host=%q http.method=%q http.path=%q", f.Host, f.Method, f.Path)
	case policy.L7DNS:
		return fmt.Sprintf("dns.qname=%q (one query)", f.QName)
	}
	return "absent"
}

func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func parseExplainFlow(proto, src, dst string, icmpType int, ct string) (*policy.Flow, error) {
	f := &policy.Flow{}
	switch strings.ToLower(proto) {
	case "tcp":
		f.Proto = 6
	case "udp":
		f.Proto = 17
	case "icmp":
		f.Proto = 1
	case "icmpv6":
		f.Proto = 58
	default:
		var n int
		if _, err := fmt.Sscan(proto, &n); err != nil || n < 0 || n > 255 {
			return nil, fmt.Errorf("unknown --proto %q", proto)
		}
		f.Proto = uint8(n)
	}
	st, ok := policy.ParseCtState(ct)
	if !ok {
		return nil, fmt.Errorf("unknown --ct-state %q (want new, established, related or invalid)", ct)
	}
	f.CtState = st
	if icmpType < 0 || icmpType > 255 {
		return nil, fmt.Errorf("--icmp-type %d out of range", icmpType)
	}
	if f.Proto == 58 && icmpType == 8 {
		icmpType = 128 // the default, in ICMPv6 numbering
	}
	f.ICMPType = uint8(icmpType)
	var err error
	if f.Src, f.SrcPort, err = parseEndpoint(src, f.Proto); err != nil {
		return nil, fmt.Errorf("--src: %w", err)
	}
	if f.Dst, f.DstPort, err = parseEndpoint(dst, f.Proto); err != nil {
		return nil, fmt.Errorf("--dst: %w", err)
	}
	return f, nil
}

func parseEndpoint(s string, proto uint8) (netip.Addr, uint16, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr(), ap.Port(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("invalid address %q (want IP:PORT, [IPv6]:PORT or IP)", s)
	}
	if proto == 6 || proto == 17 {
		return netip.Addr{}, 0, fmt.Errorf("%q needs a port for tcp/udp", s)
	}
	return a, 0, nil
}
