package reassembly

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tungate/tungate/internal/units"
	"github.com/tungate/tungate/stack/packet/packettest"
)

// Test addresses: a client and a server of each family.
var (
	cli4 = netip.MustParseAddr("198.18.1.2")
	srv4 = netip.MustParseAddr("198.18.2.1")
	cli6 = netip.MustParseAddr("2001:2:0:1::2")
	srv6 = netip.MustParseAddr("2001:2:0:2::1")
)

// orig is an unfragmented datagram and how to cut it into fragments.
type orig struct {
	pkt    []byte // the datagram reassembly must give back
	unfrag int    // what each fragment repeats: the IPv4 header, or the IPv6 header and the extension headers before the Fragment header
	nhPos  int    // IPv6: the Next Header byte that names the Fragment header in a fragment
	id     uint32
}

// size is the length of the fragmentable part.
func (o orig) size() int { return len(o.pkt) - o.unfrag }

// data is n bytes of a pattern that does not repeat every 8, so a
// fragment put in the wrong place shows.
func data(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

// v4 wraps l4 in IPv4 from cli4 to srv4, DF clear as a fragmented
// datagram has it, identification 0x4242.
func v4(proto uint8, l4 []byte) orig {
	b := packettest.IP(cli4, srv4, proto, l4)
	ip := header.IPv4(b)
	ip.SetFlagsFragmentOffset(0, 0)
	ip.SetID(0x4242)
	fixIPv4(b)
	return orig{pkt: b, unfrag: header.IPv4MinimumSize, id: 0x4242}
}

func udp4(n int) orig { return v4(packettest.UDP, packettest.UDPHdr(40000, 53, data(n))) }
func tcp4(n int) orig {
	return v4(packettest.TCP, packettest.TCPHdr(40000, 80, 1, 1, uint8(header.TCPFlagAck), data(n)))
}

// withOptions4 is o with 8 bytes of IPv4 options (a Record Route with one
// slot, not copied into later fragments, and EOL padding).
func withOptions4(o orig) orig {
	b := append(append(append([]byte(nil), o.pkt[:20]...), 7, 7, 4, 0, 0, 0, 0, 0), o.pkt[20:]...)
	ip := header.IPv4(b)
	ip.SetHeaderLength(28)
	ip.SetTotalLength(uint16(len(b)))
	fixIPv4(b)
	return orig{pkt: b, unfrag: 28, id: o.id}
}

func fixIPv4(b []byte) {
	ip := header.IPv4(b)
	ip.SetChecksum(0)
	ip.SetChecksum(^ip.CalculateChecksum())
}

// v6 wraps l4 (protocol proto) in IPv6 from cli6 to srv6 behind the
// extension headers before (the unfragmentable part) and after (the start
// of the fragmentable part), each 8 bytes of PadN. Its fragments carry
// identification 0x42424242.
func v6(proto uint8, l4 []byte, before, after []uint8) orig {
	types := append(append([]uint8(nil), before...), after...)
	ext := make([]byte, 0, 8*len(types)+len(l4))
	for i := range types {
		next := proto
		if i+1 < len(types) {
			next = types[i+1]
		}
		ext = append(ext, next, 0, 1, 4, 0, 0, 0, 0)
	}
	first := proto
	if len(types) > 0 {
		first = types[0]
	}
	b := packettest.IP(cli6, srv6, first, append(ext, l4...))
	packettest.FillChecksum(b, 6, header.IPv6MinimumSize+len(ext), proto)
	o := orig{pkt: b, unfrag: header.IPv6MinimumSize + 8*len(before), nhPos: 6, id: 0x42424242}
	if len(before) > 0 {
		o.nhPos = o.unfrag - 8
	}
	return o
}

func udp6(n int) orig { return v6(packettest.UDP, packettest.UDPHdr(40000, 53, data(n)), nil, nil) }
func tcp6(n int) orig {
	return v6(packettest.TCP, packettest.TCPHdr(40000, 80, 1, 1, uint8(header.TCPFlagAck), data(n)), nil, nil)
}

func (o orig) is6() bool { return o.pkt[0]>>4 == 6 }

// frag is the fragment of o holding [start, end) of its fragmentable
// part, More Fragments set unless it reaches the end.
func (o orig) frag(start, end int) []byte { return o.fragMF(start, end, end < o.size()) }

// fragMF is frag with the More flag given.
func (o orig) fragMF(start, end int, more bool) []byte {
	body := o.pkt[o.unfrag+start : o.unfrag+end]
	if o.is6() {
		b := append([]byte(nil), o.pkt[:o.unfrag]...)
		fo := uint16(start)
		if more {
			fo |= 1
		}
		b = append(b, o.pkt[o.nhPos], 0, byte(fo>>8), byte(fo), 0, 0, 0, 0)
		binary.BigEndian.PutUint32(b[len(b)-4:], o.id)
		b[o.nhPos] = uint8(header.IPv6FragmentExtHdrIdentifier)
		b = append(b, body...)
		binary.BigEndian.PutUint16(b[4:], uint16(len(b)-header.IPv6MinimumSize))
		return b
	}
	// Later fragments get the bare header: options not marked copied
	// stay in the first (RFC 791 §3.1).
	hl := o.unfrag
	if start > 0 {
		hl = header.IPv4MinimumSize
	}
	b := append(append([]byte(nil), o.pkt[:hl]...), body...)
	ip := header.IPv4(b)
	ip.SetHeaderLength(uint8(hl))
	ip.SetTotalLength(uint16(len(b)))
	flags := ip.Flags() &^ header.IPv4FlagMoreFragments
	if more {
		flags |= header.IPv4FlagMoreFragments
	}
	ip.SetFlagsFragmentOffset(flags, uint16(start))
	fixIPv4(b)
	return b
}

// split cuts o into fragments at the offsets cuts (multiples of 8).
func (o orig) split(cuts ...int) [][]byte {
	var fs [][]byte
	start := 0
	for _, c := range append(cuts, o.size()) {
		fs = append(fs, o.frag(start, c))
		start = c
	}
	return fs
}

// every is o cut into fragments of n bytes.
func (o orig) every(n int) [][]byte {
	var cuts []int
	for c := n; c < o.size(); c += n {
		cuts = append(cuts, c)
	}
	return o.split(cuts...)
}

// pick is fs in the order idx.
func pick(fs [][]byte, idx ...int) [][]byte {
	out := make([][]byte, len(idx))
	for i, j := range idx {
		out[i] = fs[j]
	}
	return out
}

// reversed is fs last first.
func reversed(fs [][]byte) [][]byte {
	out := make([][]byte, len(fs))
	for i, f := range fs {
		out[len(fs)-1-i] = f
	}
	return out
}

// flipped is a copy of p with its last byte changed: same extent,
// different data.
func flipped(p []byte) []byte {
	c := append([]byte(nil), p...)
	c[len(c)-1] ^= 0xff
	return c
}

// result is one Add's answer.
type result struct {
	res Result
	why Reason
}

// feed gives r the packets in order and returns each answer and the last
// completed datagram.
func feed(r *Reassembler, pkts ...[]byte) (got []result, done []byte) {
	out := make([]byte, MaxDatagram)
	for _, p := range pkts {
		n, res, why := r.Add(p, out)
		got = append(got, result{res, why})
		if res == Complete {
			done = append([]byte(nil), out[:n]...)
		}
	}
	return got, done
}

// held is n Held results.
func held(n int) []result {
	r := make([]result, n)
	for i := range r {
		r[i] = result{Held, ReasonNone}
	}
	return r
}

func (r result) String() string { return r.res.String() + "/" + r.why.String() }

func sameResults(a, b []result) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// fakeClock is a clock a test moves by hand.
type fakeClock struct {
	mu sync.Mutex // guards t
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Unix(1700000000, 0)} }

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newTest is a Reassembler with the default timeout on a fake clock.
func newTest(memory int) (*Reassembler, *fakeClock) {
	c := newClock()
	return New(Config{Memory: units.Size(memory)}, c.now), c
}

// checkOriginal fails unless got is o's datagram, byte for byte, and
// valid as a packet of its family.
func checkOriginal(t *testing.T, got []byte, o orig) {
	t.Helper()
	if string(got) != string(o.pkt) {
		t.Fatalf("reassembled datagram differs from the original:\ngot  %x\nwant %x", got, o.pkt)
	}
	if o.is6() {
		if !header.IPv6(got).IsValid(len(got)) {
			t.Errorf("reassembled IPv6 packet does not parse")
		}
	} else if !header.IPv4(got).IsChecksumValid() {
		t.Errorf("reassembled IPv4 header checksum invalid")
	}
	if IsFragment(got) {
		t.Errorf("reassembled datagram is still a fragment")
	}
}

// checkEmpty fails unless r holds nothing and its counts add up.
func checkEmpty(t *testing.T, r *Reassembler) {
	t.Helper()
	st := r.Stats()
	if st.FragmentsHeld != 0 || st.DatagramsHeld != 0 || st.MemoryInUse != 0 {
		t.Errorf("held: got %d fragments, %d datagrams, %d bytes; want none", st.FragmentsHeld, st.DatagramsHeld, st.MemoryInUse)
	}
	checkConserved(t, st)
}

// checkConserved fails unless every fragment is counted exactly once.
func checkConserved(t testing.TB, st Stats) {
	t.Helper()
	sum := st.FragmentsReassembled + st.Atomic + uint64(st.FragmentsHeld)
	for _, n := range st.FragmentsDropped {
		sum += n
	}
	if sum != st.Fragments {
		t.Errorf("fragments: got %d given but %d accounted for (%+v)", st.Fragments, sum, st)
	}
}
