package bench

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
)

// Addresses and ports the benchmark traffic uses. They match internal/lab:
// the client network sits behind lan0, the server network behind wan0.
var (
	ClientNets = []netip.Prefix{netip.MustParsePrefix("198.18.1.0/24"), netip.MustParsePrefix("2001:2:0:1::/64")}
	ServerNets = []netip.Prefix{netip.MustParsePrefix("198.18.2.0/24"), netip.MustParsePrefix("2001:2:0:2::/64")}
)

// Ports of the benchmark servers.
const (
	PortIperf    = 5201 // iperf3, TCP control and data, UDP data
	PortReqResp  = 7001 // one byte in, one byte out, server closes
	PortPingPong = 7002 // one-byte echo for latency
	PortHold     = 7003 // accepts and holds idle connections
)

// PortRange is an inclusive destination port range; Lo == Hi for one port.
type PortRange struct{ Lo, Hi uint16 }

// PolicyRules is the size of the committed benchmark policy.
const PolicyRules = 1000

// Rule is one filter rule in a form both tungate's TOML and nftables can
// express. An empty Src, Dst or DstPorts matches anything.
type Rule struct {
	Name     string
	Proto    []string // tcp, udp, icmp, icmpv6
	Src, Dst []netip.Prefix
	DstPorts []PortRange
	Action   string // allow, drop, reject
}

// Policy is the generated benchmark policy: filler that a real site might
// have, which never matches the benchmark traffic, followed by the rules
// that allow it, so every new benchmark flow is checked against all of it.
type Policy struct {
	Rules []Rule
}

// benchRules allow exactly the benchmark traffic.
func benchRules() []Rule {
	return []Rule{
		{Name: "allow-bench-tcp", Proto: []string{"tcp"}, Src: ClientNets, Dst: ServerNets,
			DstPorts: []PortRange{{PortIperf, PortIperf}, {PortReqResp, PortHold}}, Action: "allow"},
		{Name: "allow-bench-udp", Proto: []string{"udp"}, Src: ClientNets, Dst: ServerNets,
			DstPorts: []PortRange{{PortIperf, PortIperf}}, Action: "allow"},
		{Name: "allow-bench-ping", Proto: []string{"icmp", "icmpv6"}, Src: ClientNets, Dst: ServerNets, Action: "allow"},
	}
}

// Generate returns a deterministic policy of about total rules. The filler
// is shaped like a site policy: blocks of known-bad networks, per-host
// service allowances, rejects of unwanted ports towards the server network
// (same destination as the benchmark, other ports) and IPv6 allowances.
// None of it matches a benchmark flow.
func Generate(total int) Policy {
	r := rand.New(rand.NewPCG(6, 1000)) // fixed: the committed file must be reproducible
	bench := benchRules()
	filler := total - len(bench)
	var rules []Rule
	// Rule kinds in the proportions below, interleaved as real policies grow.
	for i := 0; i < filler; i++ {
		switch k := i % 10; {
		case k < 3:
			rules = append(rules, blockRule(r, i))
		case k < 8:
			rules = append(rules, serviceRule(r, i))
		case k < 9:
			rules = append(rules, rejectRule(r, i))
		default:
			rules = append(rules, v6Rule(r, i))
		}
	}
	return Policy{Rules: append(rules, bench...)}
}

// farV4 is an address in 198.19.0.0/16, where no benchmark host lives.
func farV4(r *rand.Rand) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 19, byte(r.IntN(256)), byte(1 + r.IntN(254))})
}

func blockRule(r *rand.Rand, i int) Rule {
	n := 1 + r.IntN(4)
	dst := make([]netip.Prefix, 0, n)
	for j := 0; j < n; j++ {
		bits := 24 + r.IntN(5)
		dst = append(dst, netip.PrefixFrom(farV4(r), bits).Masked())
	}
	action := "drop"
	if r.IntN(3) == 0 {
		action = "reject"
	}
	return Rule{Name: fmt.Sprintf("block-net-%04d", i), Proto: []string{"tcp", "udp"}, Dst: dst, Action: action}
}

// servicePorts are the ports a site typically opens per host.
var servicePorts = []uint16{22, 25, 53, 80, 110, 123, 143, 389, 443, 445, 587, 636, 993, 995, 1433, 1521, 3306, 3389, 5432, 6379, 8080, 8443, 9200, 27017}

func serviceRule(r *rand.Rand, i int) Rule {
	src := netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(1 + r.IntN(200)), 0}), 24)
	if r.IntN(4) == 0 {
		src = ClientNets[0]
	}
	n := 1 + r.IntN(3)
	ports := make([]PortRange, 0, n)
	for j := 0; j < n; j++ {
		p := servicePorts[r.IntN(len(servicePorts))]
		ports = append(ports, PortRange{p, p})
	}
	proto := "tcp"
	if r.IntN(5) == 0 {
		proto = "udp"
	}
	return Rule{Name: fmt.Sprintf("allow-svc-%04d", i), Proto: []string{proto}, Src: []netip.Prefix{src},
		Dst: []netip.Prefix{netip.PrefixFrom(farV4(r), 32)}, DstPorts: ports, Action: "allow"}
}

func rejectRule(r *rand.Rand, i int) Rule {
	// Ports 10000-60999: far from every benchmark port.
	lo := uint16(10000 + r.IntN(50000))
	hi := lo + uint16(r.IntN(1000))
	return Rule{Name: fmt.Sprintf("reject-port-%04d", i), Proto: []string{"tcp"}, Src: []netip.Prefix{ClientNets[0]},
		Dst: []netip.Prefix{ServerNets[0]}, DstPorts: []PortRange{{lo, hi}}, Action: "reject"}
}

func v6Rule(r *rand.Rand, i int) Rule {
	// 2001:2:0:100::/56 and up: inside the benchmarking range, away from the lab.
	var a [16]byte
	copy(a[:], []byte{0x20, 0x01, 0, 0x02, 0, 0, byte(1 + r.IntN(200)), byte(r.IntN(256))})
	a[15] = byte(1 + r.IntN(254))
	p := servicePorts[r.IntN(len(servicePorts))]
	return Rule{Name: fmt.Sprintf("allow-v6-%04d", i), Proto: []string{"tcp"}, Src: []netip.Prefix{ClientNets[1]},
		Dst: []netip.Prefix{netip.PrefixFrom(netip.AddrFrom16(a), 128)}, DstPorts: []PortRange{{p, p}}, Action: "allow"}
}

// TOMLHeader is everything in configs/bench.toml before the rules.
const TOMLHeader = `# The benchmark policy: ` + "`make bench`" + ` runs tungate on this file.
# GENERATED by bench/cmd/genpolicy (go run ./bench/cmd/genpolicy -o configs/bench.toml);
# do not edit by hand. About 1000 rules shaped like a site policy that never
# match the benchmark traffic, then the three rules that allow it, so every
# new benchmark flow is checked against the whole list. The nftables variant
# of the benchmark loads the same rules (bench.Policy.NFT).

[tun]
name = "tungate0"

[routing]
steer = ["lan0"]

[egress]
interface = "wan0"

[control]
socket = "/run/tungate-bench.sock"   # tgbench gives each run its own path

[conntrack]
# One client drives all benchmark traffic, including 10,000 idle connections
# and connection-rate runs whose flows linger in TIME_WAIT: the per-source
# cap would otherwise measure itself instead of the data path.
max_flows            = 262144
max_flows_per_source = 262144

[log]
level     = "info"
decisions = "drops"

[defaults]
policy = "drop"

`

// TOML renders the policy as configs/bench.toml.
func (p Policy) TOML() string {
	var b strings.Builder
	b.WriteString(TOMLHeader)
	for _, r := range p.Rules {
		b.WriteString("[[rule]]\n")
		fmt.Fprintf(&b, "name     = %q\n", r.Name)
		fmt.Fprintf(&b, "proto    = %s\n", tomlStrings(r.Proto))
		if len(r.Src) > 0 {
			fmt.Fprintf(&b, "src      = %s\n", tomlStrings(prefixStrings(r.Src)))
		}
		if len(r.Dst) > 0 {
			fmt.Fprintf(&b, "dst      = %s\n", tomlStrings(prefixStrings(r.Dst)))
		}
		if len(r.DstPorts) > 0 {
			parts := make([]string, len(r.DstPorts))
			for i, pr := range r.DstPorts {
				if pr.Lo == pr.Hi {
					parts[i] = fmt.Sprint(pr.Lo)
				} else {
					parts[i] = fmt.Sprintf("\"%d-%d\"", pr.Lo, pr.Hi)
				}
			}
			fmt.Fprintf(&b, "dst_port = [%s]\n", strings.Join(parts, ", "))
		}
		fmt.Fprintf(&b, "action   = %q\n\n", r.Action)
	}
	return b.String()
}

func tomlStrings(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func prefixStrings(ps []netip.Prefix) []string {
	s := make([]string, len(ps))
	for i, p := range ps {
		if p.IsSingleIP() {
			s[i] = p.Addr().String()
		} else {
			s[i] = p.String()
		}
	}
	return s
}

// NFTTable is the name of the table NFT creates.
const NFTTable = "tgbench"

// NFT renders the policy as an nftables ruleset for the gateway namespace:
// a stateful forward chain, policy drop, in which established and related
// packets pass before any rule and every rule is tried on new flows only,
// the way tungate's conntrack fast path works.
func (p Policy) NFT() string {
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {\n\tchain forward {\n\t\ttype filter hook forward priority filter; policy drop;\n", NFTTable)
	b.WriteString("\t\tct state established,related accept\n\t\tct state invalid drop\n")
	for _, r := range p.Rules {
		for _, line := range nftRule(r) {
			b.WriteString("\t\t" + line + "\n")
		}
	}
	b.WriteString("\t}\n}\n")
	return b.String()
}

// nftRule renders one rule as one nft rule per address family it can match.
func nftRule(r Rule) []string {
	var out []string
	for _, v6 := range []bool{false, true} {
		src, okS := family(r.Src, v6)
		dst, okD := family(r.Dst, v6)
		if !okS || !okD {
			continue
		}
		var protos []string
		for _, p := range r.Proto {
			switch {
			case p == "icmp" && !v6:
				protos = append(protos, "icmp")
			case p == "icmpv6" && v6:
				protos = append(protos, "ipv6-icmp")
			case p == "tcp" || p == "udp":
				protos = append(protos, p)
			}
		}
		if len(protos) == 0 {
			continue
		}
		var m []string
		ipk := "ip"
		if v6 {
			ipk = "ip6"
		}
		if len(src) > 0 {
			m = append(m, ipk+" saddr "+nftSet(prefixStrings(src)))
		}
		if len(dst) > 0 {
			m = append(m, ipk+" daddr "+nftSet(prefixStrings(dst)))
		}
		m = append(m, "meta l4proto "+nftSet(protos))
		if len(r.DstPorts) > 0 {
			ps := make([]string, len(r.DstPorts))
			for i, pr := range r.DstPorts {
				if pr.Lo == pr.Hi {
					ps[i] = fmt.Sprint(pr.Lo)
				} else {
					ps[i] = fmt.Sprintf("%d-%d", pr.Lo, pr.Hi)
				}
			}
			m = append(m, "th dport "+nftSet(ps))
		}
		switch r.Action {
		case "allow":
			m = append(m, "accept")
		case "drop":
			m = append(m, "drop")
		case "reject":
			if len(protos) == 1 && protos[0] == "tcp" {
				m = append(m, "reject with tcp reset")
			} else {
				m = append(m, "reject")
			}
		}
		out = append(out, strings.Join(m, " ")+" comment "+fmt.Sprintf("%q", r.Name))
	}
	return out
}

// family returns the prefixes of one address family; ok is false when the
// list is non-empty but holds none of that family, so the rule cannot match.
func family(ps []netip.Prefix, v6 bool) (out []netip.Prefix, ok bool) {
	if len(ps) == 0 {
		return nil, true
	}
	for _, p := range ps {
		if p.Addr().Is6() == v6 {
			out = append(out, p)
		}
	}
	return out, len(out) > 0
}

func nftSet(elems []string) string {
	if len(elems) == 1 {
		return elems[0]
	}
	return "{ " + strings.Join(elems, ", ") + " }"
}
