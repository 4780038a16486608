package packettest

import (
	"net/netip"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// TestChecksumsValid checks each builder's output with gVisor's own
// checksum verification, so the tests that use them start from packets a
// real stack accepts.
func TestChecksumsValid(t *testing.T) {
	c4, s4 := netip.MustParseAddr("198.18.1.2"), netip.MustParseAddr("198.18.2.1")
	c6, s6 := netip.MustParseAddr("2001:2:0:1::2"), netip.MustParseAddr("2001:2:0:2::1")
	for _, tc := range []struct {
		name string
		pkt  []byte
	}{
		{"syn4", SYN(c4, s4, 40000, 80)},
		{"tcp6 data", IP(c6, s6, TCP, TCPHdrOpts(40000, 80, 1, 2, uint8(header.TCPFlagAck), []byte{2, 4, 5, 180}, []byte("data")))},
		{"udp4", IP(c4, s4, UDP, UDPHdr(1, 53, []byte("q")))},
		{"udp6", IP(c6, s6, UDP, UDPHdr(1, 53, []byte("q")))},
	} {
		var src, dst tcpip.Address
		var l4 []byte
		if tc.pkt[0]>>4 == 4 {
			ip := header.IPv4(tc.pkt)
			if !ip.IsChecksumValid() {
				t.Errorf("%s: IPv4 header checksum invalid", tc.name)
			}
			src, dst, l4 = ip.SourceAddress(), ip.DestinationAddress(), ip.Payload()
		} else {
			ip := header.IPv6(tc.pkt)
			src, dst, l4 = ip.SourceAddress(), ip.DestinationAddress(), ip.Payload()
		}
		proto := tc.pkt[9]
		if tc.pkt[0]>>4 == 6 {
			proto = tc.pkt[6]
		}
		var ok bool
		switch proto {
		case TCP:
			t := header.TCP(l4)
			data := l4[t.DataOffset():]
			ok = t.IsChecksumValid(src, dst, checksum.Checksum(data, 0), uint16(len(data)))
		case UDP:
			ok = header.UDP(l4).IsChecksumValid(src, dst, checksum.Checksum(l4[header.UDPMinimumSize:], 0))
		}
		if !ok {
			t.Errorf("%s: transport checksum invalid", tc.name)
		}
	}
}

func TestV6ExtChain(t *testing.T) {
	b := V6ExtChain(netip.MustParseAddr("2001:2:0:1::2"), netip.MustParseAddr("2001:2:0:2::1"), 3)
	if got, want := len(b), 40+3*8+9; got != want {
		t.Fatalf("length %d; want %d", got, want)
	}
	if b[6] != uint8(header.IPv6DestinationOptionsExtHdrIdentifier) || b[40+2*8] != UDP {
		t.Errorf("chain: next header %d, last ext's next %d", b[6], b[40+2*8])
	}
}

func TestFragments(t *testing.T) {
	for _, tc := range []struct{ src, dst string }{{"198.18.1.2", "198.18.2.1"}, {"2001:2:0:1::2", "2001:2:0:2::1"}} {
		src, dst := netip.MustParseAddr(tc.src), netip.MustParseAddr(tc.dst)
		pkt := IP(src, dst, UDP, UDPHdr(1, 53, make([]byte, 3000)))
		frags := Fragments(pkt, 1400, 7)
		if len(frags) != 3 {
			t.Fatalf("%s: %d fragments; want 3", tc.src, len(frags))
		}
		total := 0
		for _, f := range frags {
			if src.Is4() {
				ip := header.IPv4(f)
				if !ip.IsChecksumValid() || ip.ID() != 7 {
					t.Errorf("%s: fragment header invalid", tc.src)
				}
				total += len(ip.Payload())
			} else {
				total += len(f) - header.IPv6MinimumSize - header.IPv6FragmentHeaderSize
			}
		}
		if total != 3008 {
			t.Errorf("%s: fragments carry %d payload bytes; want 3008", tc.src, total)
		}
	}
}
