package packet

import (
	"net/netip"
	"testing"

	"github.com/tungate/tungate/conntrack"
	"github.com/tungate/tungate/stack/packet/packettest"
)

func TestOutboundFragment(t *testing.T) {
	for _, fam := range families() {
		t.Run(fam.name, func(t *testing.T) {
			udp := packettest.IP(fam.srv, fam.cli, ProtoUDP, packettest.UDPHdr(53, 40000, make([]byte, 3000)))
			echo := packettest.IP(fam.srv, fam.cli, ProtoICMP, packettest.EchoHdr(fam.cli.Is6(), 0x4242, 1, make([]byte, 3000)))
			echo[len(echo)-3008] = map[bool]uint8{false: 0, true: 129}[fam.cli.Is6()] // make it a reply
			for _, tc := range []struct {
				name string
				pkt  []byte
				want conntrack.Key
			}{
				{"udp", udp, conntrack.KeyFrom(ProtoUDP, netip.AddrPortFrom(fam.srv, 53), netip.AddrPortFrom(fam.cli, 40000))},
				{"echo reply", echo, echoReplyKey(fam.srv, fam.cli, 0x4242)},
			} {
				frags := packettest.Fragments(tc.pkt, 1400, 9)
				for i, f := range frags {
					var p Parsed
					if r := ParseOutbound(f, &p); r != ReasonFragment {
						t.Fatalf("%s fragment %d: ParseOutbound %v; want fragment", tc.name, i, r)
					}
					first := OutboundFragment(f, &p)
					if first != (i == 0) {
						t.Errorf("%s fragment %d: first %v", tc.name, i, first)
					}
					if i == 0 && p.CT.Key != tc.want {
						t.Errorf("%s: key %+v; want %+v", tc.name, p.CT.Key, tc.want)
					}
					if p.CT.Len != len(f) {
						t.Errorf("%s fragment %d: Len %d; want %d", tc.name, i, p.CT.Len, len(f))
					}
				}
			}
			if OutboundFragment([]byte{0x45, 0, 0}, new(Parsed)) {
				t.Error("garbage taken for a first fragment")
			}
		})
	}
}

func echoReplyKey(src, dst netip.Addr, id uint16) conntrack.Key {
	proto := uint8(ProtoICMP)
	if src.Is6() {
		proto = ProtoICMPv6
	}
	return conntrack.KeyFrom(proto, netip.AddrPortFrom(src, id), netip.AddrPortFrom(dst, 0))
}

func FuzzOutboundFragment(f *testing.F) {
	pkt := packettest.IP(srv4, cli4, ProtoUDP, packettest.UDPHdr(53, 40000, make([]byte, 2000)))
	for _, fr := range packettest.Fragments(pkt, 1000, 1) {
		f.Add(fr)
	}
	pkt6 := packettest.IP(srv6, cli6, ProtoUDP, packettest.UDPHdr(53, 40000, make([]byte, 2000)))
	for _, fr := range packettest.Fragments(pkt6, 1000, 1) {
		f.Add(fr)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var p Parsed
		if ParseOutbound(b, &p) == ReasonFragment {
			OutboundFragment(b, &p)
		}
	})
}
