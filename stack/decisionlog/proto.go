package decisionlog

import "strconv"

// ProtoName is the name an IP protocol number goes by in the log: its
// lowercase IANA keyword as /etc/protocols spells it, or the number in
// decimal where there is none. Two names differ from that file: 58 is
// "icmpv6", the name the policy's proto lists use, and 4 is "ipip", Linux's
// name for IPv4 in IPv4 (the keyword "ipv4" would read as the packet's own
// family). 94, the other IP-in-IP, stays a number so "ipip" means one thing.
// It never allocates.
func ProtoName(p uint8) string { return protoNames[p] }

var protoNames = func() (t [256]string) {
	for p := range t {
		t[p] = strconv.Itoa(p)
	}
	for p, name := range map[uint8]string{
		0:   "hopopt",
		1:   "icmp",
		2:   "igmp",
		4:   "ipip",
		6:   "tcp",
		8:   "egp",
		17:  "udp",
		33:  "dccp",
		41:  "ipv6",
		43:  "ipv6-route",
		44:  "ipv6-frag",
		46:  "rsvp",
		47:  "gre",
		50:  "esp",
		51:  "ah",
		58:  "icmpv6",
		59:  "ipv6-nonxt",
		60:  "ipv6-opts",
		88:  "eigrp",
		89:  "ospf",
		97:  "etherip",
		98:  "encap",
		103: "pim",
		108: "ipcomp",
		112: "vrrp",
		115: "l2tp",
		132: "sctp",
		135: "mobility-header",
		136: "udplite",
		137: "mpls-in-ip",
		143: "ethernet",
	} {
		t[p] = name
	}
	return t
}()
