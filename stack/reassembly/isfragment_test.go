package reassembly

import (
	"encoding/binary"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tungate/tungate/stack/packet/packettest"
)

func TestIsFragment(t *testing.T) {
	hbh, dst := uint8(header.IPv6HopByHopOptionsExtHdrIdentifier), uint8(header.IPv6DestinationOptionsExtHdrIdentifier)
	u4, u6 := udp4(2000), udp6(2000)
	df := append([]byte(nil), u4.pkt...)
	header.IPv4(df).SetFlagsFragmentOffset(header.IPv4FlagDontFragment, 0)
	deep := func(n int) orig { // n extension headers before the Fragment header
		before := []uint8{hbh}
		for len(before) < n {
			before = append(before, dst)
		}
		return v6(packettest.UDP, packettest.UDPHdr(1, 53, data(100)), before, nil)
	}
	jumbo := u6.frag(0, 1232)
	binary.BigEndian.PutUint16(jumbo[4:], 0)
	for _, tc := range []struct {
		name string
		pkt  []byte
		want bool
	}{
		{"ipv4 datagram", u4.pkt, false},
		{"ipv4 DF", df, false},
		{"ipv4 first fragment", u4.frag(0, 1000), true},
		{"ipv4 last fragment", u4.frag(1000, u4.size()), true},
		{"ipv4 short", u4.frag(0, 1000)[:19], false},
		{"ipv6 datagram", u6.pkt, false},
		{"ipv6 behind three headers", packettest.V6ExtChain(cli6, srv6, 3), false},
		{"ipv6 first fragment", u6.frag(0, 1232), true},
		{"ipv6 last fragment", u6.frag(1232, u6.size()), true},
		{"ipv6 atomic fragment", u6.fragMF(0, u6.size(), false), true},
		{"ipv6 fragment header 8th", deep(7).frag(0, 48), true},
		{"ipv6 fragment header 9th", deep(8).frag(0, 48), false},
		{"ipv6 fragment header cut", u6.frag(0, 1232)[:44], false},
		{"ipv6 jumbo", jumbo, false},
		{"ipv6 short", u6.pkt[:39], false},
		{"empty", nil, false},
		{"version 5", []byte{0x50, 0, 0, 0}, false},
	} {
		if got := IsFragment(tc.pkt); got != tc.want {
			t.Errorf("%s: got %v; want %v", tc.name, got, tc.want)
		}
	}
}

// TestIsFragmentAllocs guards the check every packet pays.
func TestIsFragmentAllocs(t *testing.T) {
	for _, p := range [][]byte{udp4(1000).pkt, packettest.V6ExtChain(cli6, srv6, 3), udp6(2000).frag(0, 1232)} {
		if n := testing.AllocsPerRun(100, func() { IsFragment(p) }); n != 0 {
			t.Errorf("IsFragment allocates %v times per call; want 0", n)
		}
	}
}

// TestAddAllocs guards what a two-fragment datagram costs: its record,
// its data buffer and its span slice, and nothing for the fragment that
// completes it or for a fragment dropped.
func TestAddAllocs(t *testing.T) {
	r, _ := newTest(defaultMemory)
	out := make([]byte, MaxDatagram)
	fs := udp4(2000).split(1000)
	if n := testing.AllocsPerRun(100, func() {
		r.Add(fs[0], out)
		r.Add(fs[1], out)
	}); n > 3 {
		t.Errorf("a two-fragment datagram allocates %v times; want at most 3", n)
	}
	bad := udp4(2000).frag(0, 1004)
	if n := testing.AllocsPerRun(100, func() { r.Add(bad, out) }); n != 0 {
		t.Errorf("a dropped fragment allocates %v times; want 0", n)
	}
}
