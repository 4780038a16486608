package reassembly

import (
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tungate/tungate/stack/packet/packettest"
)

// TestReassemble puts datagrams back together from fragments in every
// order and checks the result is the original, byte for byte.
func TestReassemble(t *testing.T) {
	hbh, dst := uint8(header.IPv6HopByHopOptionsExtHdrIdentifier), uint8(header.IPv6DestinationOptionsExtHdrIdentifier)
	rt := uint8(header.IPv6RoutingExtHdrIdentifier)
	tests := []struct {
		name  string
		o     orig
		frags func(orig) [][]byte
	}{
		{"v4 udp in order", udp4(3000), func(o orig) [][]byte { return o.split(1480, 2960) }},
		{"v4 udp out of order", udp4(3000), func(o orig) [][]byte { return pick(o.split(1480, 2960), 1, 2, 0) }},
		{"v4 udp reverse", udp4(3000), func(o orig) [][]byte { return reversed(o.split(1480, 2960)) }},
		{"v4 udp last first", udp4(3000), func(o orig) [][]byte { return pick(o.split(1480, 2960), 2, 0, 1) }},
		{"v4 tcp", tcp4(2000), func(o orig) [][]byte { return o.split(1480) }},
		{"v4 icmp first fragment of 8", v4(packettest.ICMP, packettest.EchoHdr(false, 1, 1, data(100))), func(o orig) [][]byte { return o.split(8) }},
		{"v4 options from the first fragment", withOptions4(udp4(1000)), func(o orig) [][]byte { return reversed(o.split(504)) }},
		{"v4 udp 8-byte fragments", udp4(300), func(o orig) [][]byte { return reversed(o.every(8)) }},
		{"v4 largest", udp4(65535 - 28), func(o orig) [][]byte { return reversed(o.every(1480)) }},
		{"v6 udp in order", udp6(3000), func(o orig) [][]byte { return o.split(1232, 2464) }},
		{"v6 udp out of order", udp6(3000), func(o orig) [][]byte { return pick(o.split(1232, 2464), 2, 0, 1) }},
		{"v6 udp reverse", udp6(3000), func(o orig) [][]byte { return reversed(o.split(1232, 2464)) }},
		{"v6 tcp", tcp6(2000), func(o orig) [][]byte { return o.split(1232) }},
		{"v6 icmpv6", v6(packettest.ICMPv6, packettest.EchoHdr(true, 1, 1, data(2000)), nil, nil), func(o orig) [][]byte { return pick(o.split(1232), 1, 0) }},
		{"v6 hop-by-hop and routing before, destination options after", v6(packettest.UDP, packettest.UDPHdr(1, 53, data(2000)), []uint8{hbh, rt}, []uint8{dst}), func(o orig) [][]byte { return reversed(o.split(1000)) }},
		{"v6 destination options after", v6(packettest.TCP, packettest.TCPHdr(1, 80, 1, 1, 0x10, data(100)), nil, []uint8{dst, dst}), func(o orig) [][]byte { return o.split(48) }},
		{"v6 largest, last first", udp6(65535 - 8), func(o orig) [][]byte { fs := o.every(1232); return append(fs[len(fs)-1:], fs[:len(fs)-1]...) }},
		{"v6 most fragments held", udp6(8*(maxFragments+1) - 8), func(o orig) [][]byte { return reversed(o.every(8)) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := newTest(defaultMemory)
			fs := tc.frags(tc.o)
			got, done := feed(r, fs...)
			want := append(held(len(fs)-1), result{Complete, ReasonNone})
			if !sameResults(got, want) {
				t.Fatalf("results: got %v; want %v", got, want)
			}
			checkOriginal(t, done, tc.o)
			st := r.Stats()
			if st.Reassembled != 1 || st.FragmentsReassembled != uint64(len(fs)) {
				t.Errorf("reassembled: got %d datagrams of %d fragments; want 1 of %d", st.Reassembled, st.FragmentsReassembled, len(fs))
			}
			checkEmpty(t, r)
		})
	}
}

// TestFirstFragmentHeader checks the datagram takes the first fragment's
// header, whatever the later ones carry: DF as the first had it, its
// options, its hop limit.
func TestFirstFragmentHeader(t *testing.T) {
	o := udp4(1000)
	fs := o.split(504)
	ip := header.IPv4(fs[0])
	ip.SetFlagsFragmentOffset(header.IPv4FlagDontFragment|header.IPv4FlagMoreFragments, 0)
	ip.SetTTL(3)
	fixIPv4(fs[0])
	header.IPv4(fs[1]).SetTTL(9)
	fixIPv4(fs[1])
	r, _ := newTest(defaultMemory)
	_, done := feed(r, fs[1], fs[0])
	got := header.IPv4(done)
	if got.Flags() != header.IPv4FlagDontFragment || got.FragmentOffset() != 0 || got.TTL() != 3 {
		t.Errorf("header: got flags %d, offset %d, TTL %d; want DF only, 0, 3", got.Flags(), got.FragmentOffset(), got.TTL())
	}
	if !got.IsChecksumValid() || int(got.TotalLength()) != len(o.pkt) {
		t.Errorf("got checksum valid %v, total length %d; want true, %d", got.IsChecksumValid(), got.TotalLength(), len(o.pkt))
	}
}

// TestIPv6NextHeaderFromFirst checks the reassembled next header is the
// first fragment's: RFC 8200 §4.5 lets the others differ and says to use
// only the first's.
func TestIPv6NextHeaderFromFirst(t *testing.T) {
	o := udp6(2000)
	fs := o.split(1232)
	fs[1][o.unfrag] = packettest.TCP
	r, _ := newTest(defaultMemory)
	_, done := feed(r, fs[1], fs[0])
	checkOriginal(t, done, o)
}

// TestECN merges the fragments' ECN codepoints as Linux does (RFC 3168
// §5.3): congestion on one is congestion on the datagram, and Not-ECT
// mixed with ECT cannot be one datagram.
func TestECN(t *testing.T) {
	setECN := func(p []byte, ecn uint8) []byte {
		c := append([]byte(nil), p...)
		if c[0]>>4 == 4 {
			c[1] = c[1]&^3 | ecn
			fixIPv4(c)
		} else {
			c[1] = c[1]&^0x30 | ecn<<4
		}
		return c
	}
	for _, o := range []orig{udp4(1000), udp6(1000)} {
		fs := o.split(504)
		for _, tc := range []struct {
			name       string
			first, sec uint8
			want       Result
			wantECN    uint8
		}{
			{"both ECT(0)", 2, 2, Complete, 2},
			{"CE on the second", 2, 3, Complete, 3},
			{"CE on the first", 3, 1, Complete, 3},
			{"ECT(1) and ECT(0) keep the first", 1, 2, Complete, 1},
			{"Not-ECT and ECT(0)", 0, 2, Dropped, 0},
			{"ECT(0) and Not-ECT", 2, 0, Dropped, 0},
		} {
			r, _ := newTest(defaultMemory)
			got, done := feed(r, setECN(fs[0], tc.first), setECN(fs[1], tc.sec))
			if got[1].res != tc.want {
				t.Errorf("v%d %s: got %v; want %v", o.pkt[0]>>4, tc.name, got[1], tc.want)
				continue
			}
			if tc.want == Dropped {
				if got[1].why != ReasonInconsistent {
					t.Errorf("v%d %s: got %v; want inconsistent", o.pkt[0]>>4, tc.name, got[1].why)
				}
				continue
			}
			ecn := done[1] & 3
			if o.is6() {
				ecn = done[1] >> 4 & 3
			} else if !header.IPv4(done).IsChecksumValid() {
				t.Errorf("v4 %s: checksum invalid", tc.name)
			}
			if ecn != tc.wantECN {
				t.Errorf("v%d %s: ECN got %d; want %d", o.pkt[0]>>4, tc.name, ecn, tc.wantECN)
			}
		}
	}
}

// TestAtomicFragment checks an IPv6 fragment with offset 0 and M = 0
// comes back at once without its Fragment header (RFC 6946), and is not
// mixed with fragments held under the same identification.
func TestAtomicFragment(t *testing.T) {
	dst := uint8(header.IPv6DestinationOptionsExtHdrIdentifier)
	for _, o := range []orig{
		udp6(100),
		v6(packettest.UDP, packettest.UDPHdr(1, 53, data(100)), []uint8{uint8(header.IPv6HopByHopOptionsExtHdrIdentifier), dst}, []uint8{dst}),
	} {
		r, _ := newTest(defaultMemory)
		held := o.frag(0, 48)
		atomic := o.fragMF(0, o.size(), false)
		got, done := feed(r, held, atomic)
		if got[1] != (result{Complete, ReasonNone}) {
			t.Fatalf("got %v; want complete", got[1])
		}
		checkOriginal(t, done, o)
		ip := header.IPv6(done)
		if int(ip.PayloadLength()) != len(done)-header.IPv6MinimumSize {
			t.Errorf("payload length: got %d; want %d", ip.PayloadLength(), len(done)-header.IPv6MinimumSize)
		}
		st := r.Stats()
		if st.Atomic != 1 || st.Reassembled != 0 || st.FragmentsHeld != 1 {
			t.Errorf("stats: got %d atomic, %d reassembled, %d held; want 1, 0, 1", st.Atomic, st.Reassembled, st.FragmentsHeld)
		}
		checkConserved(t, st)
	}
}
