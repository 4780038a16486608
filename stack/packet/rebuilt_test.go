package packet

import (
	"net/netip"
	"testing"

	"github.com/tungate/tungate/conntrack"
)

func TestRebuiltUnreachable(t *testing.T) {
	for _, fam := range families() {
		k := conntrack.KeyFrom(ProtoTCP, netip.AddrPortFrom(fam.cli, 40000), netip.AddrPortFrom(fam.srv, 80))
		for _, tc := range []struct {
			kind       Unreachable
			code4, co6 uint8
		}{{HostUnreachable, 1, 3}, {NetUnreachable, 0, 0}, {PortUnreachable, 3, 4}} {
			out := make([]byte, IPv6MinMTU)
			n := RebuiltUnreachable(out, &k, 123456789, tc.kind)
			var p Parsed
			if r := Parse(out[:n], &p); r != ReasonNone || !p.ICMPErr {
				t.Fatalf("%s kind %d: parse %v, error %v", fam.name, tc.kind, r, p.ICMPErr)
			}
			want := tc.code4
			if fam.cli.Is6() {
				want = tc.co6
			}
			if p.CT.ICMPCode != want || p.CT.Key.SrcAddr() != fam.srv || p.CT.Key.DstAddr() != fam.cli {
				t.Errorf("%s kind %d: code %d from %v to %v; want code %d from %v to %v", fam.name, tc.kind,
					p.CT.ICMPCode, p.CT.Key.SrcAddr(), p.CT.Key.DstAddr(), want, fam.srv, fam.cli)
			}
			if p.Quote.Key != k || p.Quote.Seq != 123456789 {
				t.Errorf("%s kind %d: quotes %+v seq %d; want the SYN of %+v with seq 123456789", fam.name, tc.kind, p.Quote.Key, p.Quote.Seq, k)
			}
		}
	}
	for _, fam := range families() {
		udp := conntrack.KeyFrom(ProtoUDP, netip.AddrPortFrom(fam.cli, 5353), netip.AddrPortFrom(fam.srv, 53))
		out := make([]byte, IPv6MinMTU)
		var p Parsed
		if r := Parse(out[:RebuiltUnreachable(out, &udp, 0, PortUnreachable)], &p); r != ReasonNone || !p.ICMPErr || p.Quote.Key != udp {
			t.Errorf("%s UDP: parse %v, error %v, quotes %+v; want a port unreachable quoting %+v", fam.name, r, p.ICMPErr, p.Quote.Key, udp)
		}
	}
	gre := conntrack.Key{Proto: 47, Family: 4}
	if n := RebuiltUnreachable(make([]byte, IPv6MinMTU), &gre, 0, HostUnreachable); n != 0 {
		t.Errorf("a GRE key got an error of %d bytes", n)
	}
}
