package packet

import (
	"net/netip"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"

	"github.com/tungate/tungate/conntrack"
)

// TestKeyOfMatchesParse: the forwarders' keys (conntrack.KeyFrom) find the flows the
// parser's keys created.
func TestKeyOfMatchesParse(t *testing.T) {
	for _, fam := range families() {
		p := mustParse(t, synPkt(fam.cli, fam.srv, 40000, 80))
		if got, want := conntrack.KeyFrom(ProtoTCP, netip.AddrPortFrom(fam.cli, 40000), netip.AddrPortFrom(fam.srv, 80)), p.CT.Key; got != want {
			t.Errorf("%s: KeyOf = %+v; want the parsed key %+v", fam.name, got, want)
		}
	}
}

func TestAddrPortOf(t *testing.T) {
	tests := []struct {
		in   tcpip.Address
		want netip.AddrPort
	}{
		{tcpip.AddrFrom4(cli4.As4()), netip.AddrPortFrom(cli4, 80)},
		{tcpip.AddrFrom16(cli6.As16()), netip.AddrPortFrom(cli6, 80)},
	}
	for _, tc := range tests {
		if got := AddrPortOf(tc.in, 80); got != tc.want {
			t.Errorf("AddrPortOf(%v) = %v; want %v", tc.in, got, tc.want)
		}
	}
}

func TestKeyOriginal(t *testing.T) {
	tcp := conntrack.KeyFrom(ProtoTCP, netip.AddrPortFrom(cli4, 40000), netip.AddrPortFrom(srv4, 80))
	tcpReply := conntrack.KeyFrom(ProtoTCP, netip.AddrPortFrom(srv4, 80), netip.AddrPortFrom(cli4, 40000))
	echo := conntrack.KeyFrom(ProtoICMPv6, netip.AddrPortFrom(cli6, 7), netip.AddrPortFrom(srv6, 0))
	echoReply := conntrack.KeyFrom(ProtoICMPv6, netip.AddrPortFrom(srv6, 7), netip.AddrPortFrom(cli6, 0))
	tests := []struct {
		name string
		k    conntrack.Key
		dir  conntrack.Dir
		want conntrack.Key
	}{
		{"tcp original", tcp, conntrack.DirOriginal, tcp},
		{"tcp reply", tcpReply, conntrack.DirReply, tcp},
		{"echo original", echo, conntrack.DirOriginal, echo},
		{"echo reply keeps the identifier", echoReply, conntrack.DirReply, echo},
	}
	for _, tc := range tests {
		if got := tc.k.Original(tc.dir); got != tc.want {
			t.Errorf("%s: Original = %+v; want %+v", tc.name, got, tc.want)
		}
	}
}

func TestFlowHashSymmetric(t *testing.T) {
	for _, fam := range families() {
		k := conntrack.KeyFrom(ProtoUDP, netip.AddrPortFrom(fam.cli, 40000), netip.AddrPortFrom(fam.srv, 53))
		r := k.Original(conntrack.DirReply)
		if got, want := FlowHash(&r), FlowHash(&k); got != want {
			t.Errorf("%s: hash of the reply %#x; want the original's %#x", fam.name, got, want)
		}
		other := conntrack.KeyFrom(ProtoUDP, netip.AddrPortFrom(fam.cli, 40001), netip.AddrPortFrom(fam.srv, 53))
		if FlowHash(&other) == FlowHash(&k) {
			t.Errorf("%s: flows one port apart hash alike", fam.name)
		}
	}
}

func TestCanReplyTo(t *testing.T) {
	any4 := netip.IPv4Unspecified()
	bcast := netip.MustParseAddr("255.255.255.255")
	mcast4 := netip.MustParseAddr("224.0.0.1")
	mcast6 := netip.MustParseAddr("ff02::1")
	udp := func(src, dst netip.Addr) []byte { return ipPkt(src, dst, ProtoUDP, udpHdr(1, 54, nil)) }
	tests := []struct {
		name string
		pkt  []byte
		want bool
	}{
		{"udp4", udp(cli4, srv4), true},
		{"udp6", udp(cli6, srv6), true},
		{"syn", synPkt(cli4, srv4, 1, 81), true},
		{"echo request", ipPkt(cli6, srv6, ProtoICMP, echoHdr(true, 1, 1, nil)), true},
		{"directed broadcast looks unicast", udp(cli4, netip.MustParseAddr("198.18.2.255")), true},
		{"tcp reset", ipPkt(cli4, srv4, ProtoTCP, tcpHdr(1, 81, 1, 0, TCPRst, nil)), false},
		{"tcp reset ack", ipPkt(cli6, srv6, ProtoTCP, tcpHdr(1, 81, 1, 1, TCPRst|TCPAck, nil)), false},
		{"icmp error", ipPkt(srv4, cli4, ProtoICMP, append([]byte{3, 3, 0, 0, 0, 0, 0, 0}, udp(cli4, srv4)...)), false},
		{"from 0.0.0.0", udp(any4, srv4), false},
		{"from ::", udp(netip.IPv6Unspecified(), srv6), false},
		{"from broadcast", udp(bcast, srv4), false},
		{"to broadcast", udp(cli4, bcast), false},
		{"from multicast v4", udp(mcast4, srv4), false},
		{"to multicast v4", udp(cli4, mcast4), false},
		{"to multicast v6", udp(cli6, mcast6), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := CanReplyTo(mustParse(t, tc.pkt)); got != tc.want {
				t.Errorf("CanReplyTo = %v; want %v", got, tc.want)
			}
		})
	}
}

func TestAddrNoAllocs(t *testing.T) {
	k := conntrack.KeyFrom(ProtoUDP, netip.AddrPortFrom(cli6, 1), netip.AddrPortFrom(srv6, 2))
	if got := testing.AllocsPerRun(100, func() { _ = tcpipAddr(&k.Src, 6); _ = tcpipAddr(&k.Src, 4) }); got != 0 {
		t.Errorf("Addr: %.1f allocations per call; want 0", got)
	}
}
