package reassembly

import (
	"encoding/binary"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tungate/tungate/stack/packet/packettest"
)

var (
	complete = result{Complete, ReasonNone}
	heldOne  = result{Held, ReasonNone}
)

func dropped(why Reason) result { return result{Dropped, why} }

// TestRules feeds fragment sequences that break one rule each and checks
// every answer and whether the datagram still completes.
func TestRules(t *testing.T) {
	u4, u6 := udp4(3000), udp6(3000)
	t4, t6 := tcp4(3000), tcp6(3000)
	tests := []struct {
		name string
		o    orig
		pkts func(orig) [][]byte
		want []result
		done bool // the last result completes o's datagram
	}{
		{"duplicate is ignored", u4, func(o orig) [][]byte { f := o.split(1480, 2960); return pick(f, 0, 1, 1, 2) },
			[]result{heldOne, heldOne, dropped(ReasonDuplicate), complete}, true},
		{"duplicate v6", u6, func(o orig) [][]byte { f := o.split(1232, 2464); return pick(f, 2, 2, 0, 0, 1) },
			[]result{heldOne, dropped(ReasonDuplicate), heldOne, dropped(ReasonDuplicate), complete}, true},
		{"same extent, different data", u4, func(o orig) [][]byte { f := o.split(1480, 2960); return [][]byte{f[0], flipped(f[0]), f[1], f[2]} },
			[]result{heldOne, dropped(ReasonOverlap), dropped(ReasonOverlap), dropped(ReasonOverlap)}, false},
		{"overlap, different data", u6, func(o orig) [][]byte {
			return [][]byte{o.frag(0, 1232), flipped(o.frag(1224, 2464)), o.frag(1232, 2464), o.frag(2464, 3008)}
		}, []result{heldOne, dropped(ReasonOverlap), dropped(ReasonOverlap), dropped(ReasonOverlap)}, false},
		{"overlap, same data, different extents", u4, func(o orig) [][]byte {
			return [][]byte{o.frag(0, 1480), o.frag(1472, 2960), o.frag(1480, 2960), o.frag(2960, 3008)}
		}, []result{heldOne, dropped(ReasonOverlap), dropped(ReasonOverlap), dropped(ReasonOverlap)}, false},
		{"overlap with the next", u6, func(o orig) [][]byte { return [][]byte{o.frag(1232, 3008), o.frag(0, 1240)} },
			[]result{heldOne, dropped(ReasonOverlap)}, false},
		{"contained in a held fragment", u4, func(o orig) [][]byte { return [][]byte{o.frag(0, 1480), o.frag(8, 16)} },
			[]result{heldOne, dropped(ReasonOverlap)}, false},
		{"covering held fragments", u4, func(o orig) [][]byte { return [][]byte{o.frag(8, 16), o.frag(24, 32), o.frag(0, 1480)} },
			[]result{heldOne, heldOne, dropped(ReasonOverlap)}, false},
		{"tiny first: tcp header split", t4, func(o orig) [][]byte { return [][]byte{o.frag(0, 16), o.frag(16, 3020)} },
			[]result{dropped(ReasonTinyFirst), heldOne}, false},
		{"tiny first v6: tcp header split", t6, func(o orig) [][]byte { return [][]byte{o.frag(0, 8), o.frag(8, 3020)} },
			[]result{dropped(ReasonTinyFirst), heldOne}, false},
		{"tcp at offset 8 (RFC 1858)", t4, func(o orig) [][]byte { return [][]byte{o.frag(0, 1480), o.frag(8, 16)} },
			[]result{heldOne, dropped(ReasonTinyFirst)}, false},
		{"non-last not a multiple of 8", u4, func(o orig) [][]byte { return [][]byte{o.frag(0, 1484), o.frag(1484, 3008)} },
			[]result{dropped(ReasonBadLength), heldOne}, false},
		{"non-last not a multiple of 8 v6", u6, func(o orig) [][]byte { return [][]byte{o.frag(1232, 1236)} },
			[]result{dropped(ReasonBadLength)}, false},
		{"zero length", u4, func(o orig) [][]byte { return [][]byte{o.frag(0, 1480), o.fragMF(1480, 1480, true)} },
			[]result{heldOne, dropped(ReasonBadLength)}, false},
		{"zero length last v6", u6, func(o orig) [][]byte { return [][]byte{o.fragMF(1232, 1232, false)} },
			[]result{dropped(ReasonBadLength)}, false},
		{"two last fragments, different ends", u4, func(o orig) [][]byte { return [][]byte{o.frag(2960, 3008), o.fragMF(1480, 2960, false)} },
			[]result{heldOne, dropped(ReasonInconsistent)}, false},
		{"last ends before held data", u6, func(o orig) [][]byte { return [][]byte{o.frag(1232, 2464), o.fragMF(616, 1232, false)} },
			[]result{heldOne, dropped(ReasonInconsistent)}, false},
		{"data past the end", u4, func(o orig) [][]byte { return [][]byte{o.fragMF(1480, 2960, false), o.fragMF(2960, 3000, true)} },
			[]result{heldOne, dropped(ReasonInconsistent)}, false},
		{"duplicate that changes More", u6, func(o orig) [][]byte { return [][]byte{o.frag(1232, 2464), o.fragMF(1232, 2464, false)} },
			[]result{heldOne, dropped(ReasonInconsistent)}, false},
		{"inconsistent datagram stays dead", u4, func(o orig) [][]byte {
			return [][]byte{o.fragMF(1480, 2960, false), o.frag(1480, 2960), o.frag(0, 1480), o.frag(2960, 3008)}
		}, []result{heldOne, dropped(ReasonInconsistent), dropped(ReasonInconsistent), dropped(ReasonInconsistent)}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := newTest(defaultMemory)
			got, done := feed(r, tc.pkts(tc.o)...)
			if !sameResults(got, tc.want) {
				t.Fatalf("results: got %v; want %v", got, tc.want)
			}
			if tc.done {
				checkOriginal(t, done, tc.o)
			}
			st := r.Stats()
			for i, res := range got {
				if res.res == Dropped && st.FragmentsDropped[res.why] == 0 {
					t.Errorf("result %d: %v not counted", i, res)
				}
			}
			checkConserved(t, st)
		})
	}
}

// TestOverlapKillsDatagram checks an overlap discards what was held and
// leaves a tombstone: the datagram's later fragments are dropped, even a
// set that would complete it, until its timeout; then a datagram under
// the same key reassembles again.
func TestOverlapKillsDatagram(t *testing.T) {
	for _, o := range []orig{udp4(3000), udp6(3000)} {
		r, clock := newTest(defaultMemory)
		fs := o.split(1480, 2960)
		got, _ := feed(r, fs[0], fs[1], o.frag(1472, 1488))
		if want := []result{heldOne, heldOne, dropped(ReasonOverlap)}; !sameResults(got, want) {
			t.Fatalf("got %v; want %v", got, want)
		}
		st := r.Stats()
		if st.DatagramsDropped[ReasonOverlap] != 1 || st.FragmentsDropped[ReasonOverlap] != 3 || st.FragmentsHeld != 0 || st.Tombstones != 1 {
			t.Errorf("after the overlap: got %d datagrams, %d fragments dropped, %d held, %d tombstones; want 1, 3, 0, 1",
				st.DatagramsDropped[ReasonOverlap], st.FragmentsDropped[ReasonOverlap], st.FragmentsHeld, st.Tombstones)
		}
		if got, want := st.MemoryInUse, int64(datagramOverhead); got != want {
			t.Errorf("tombstone memory: got %d; want %d", got, want)
		}
		got, _ = feed(r, fs...)
		if want := []result{dropped(ReasonOverlap), dropped(ReasonOverlap), dropped(ReasonOverlap)}; !sameResults(got, want) {
			t.Fatalf("the whole set again before the timeout: got %v; want %v", got, want)
		}
		clock.advance(30 * time.Second)
		got, done := feed(r, fs...)
		if want := []result{heldOne, heldOne, complete}; !sameResults(got, want) {
			t.Fatalf("after the timeout: got %v; want %v", got, want)
		}
		checkOriginal(t, done, o)
		if st := r.Stats(); st.Tombstones != 0 || st.DatagramsDropped[ReasonTimeout] != 0 {
			t.Errorf("a tombstone timing out: got %d tombstones, %d timeouts; want 0, 0", st.Tombstones, st.DatagramsDropped[ReasonTimeout])
		}
		checkEmpty(t, r)
	}
}

// TestTooBig checks no datagram past 65,535 bytes is built: a fragment
// that reaches past it alone is dropped, and one whose datagram would,
// with the first fragment's header, takes the datagram with it.
func TestTooBig(t *testing.T) {
	dst := uint8(header.IPv6DestinationOptionsExtHdrIdentifier)
	big4 := udp4(65535 - 28)                                                                         // the largest IPv4 datagram
	big4opt := withOptions4(udp4(65535 - 28 - 8))                                                    // the largest with 8 bytes of options
	big6 := udp6(65535 - 8)                                                                          // the largest IPv6 payload
	big6ext := v6(packettest.UDP, packettest.UDPHdr(1, 53, data(65535-16)), []uint8{dst}, []uint8{}) // the same behind a header
	tests := []struct {
		name string
		pkts [][]byte
		want []result
	}{
		// The ping of death: offset 65,528 with 8 bytes more than fit.
		{"v4 fragment past 65,515 bytes of data", [][]byte{withOffset(big4.frag(65504, 65515), 65512)},
			[]result{dropped(ReasonTooBig)}},
		{"v4 first header makes it too big", [][]byte{withOffset(big4opt.fragMF(65496, 65504, false), 65504), big4opt.frag(0, 1480)},
			[]result{heldOne, dropped(ReasonTooBig)}},
		{"v4 last past the first header's room", [][]byte{big4opt.frag(0, 1480), withOffset(big4opt.fragMF(65496, 65504, false), 65504)},
			[]result{heldOne, dropped(ReasonTooBig)}},
		{"v6 fragment past 65,535", [][]byte{withOffset(big6.frag(65520, 65535), 65528)},
			[]result{dropped(ReasonTooBig)}},
		// A fragment whose end lies past 65,535 bytes of an otherwise
		// held datagram kills it, as Linux kills the queue: the rest of
		// the datagram no longer completes it.
		{"v4 held datagram killed by a fragment past the limit", [][]byte{udp4(2952).frag(0, 1480), withOffset(big4.frag(65504, 65515), 65512), udp4(2952).frag(1480, 2960)},
			[]result{heldOne, dropped(ReasonTooBig), dropped(ReasonTooBig)}},
		{"v6 unfragmentable part makes it too big", [][]byte{withOffset(big6ext.frag(65520, 65527), 65528), big6ext.frag(0, 1232)},
			[]result{heldOne, dropped(ReasonTooBig)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := newTest(defaultMemory)
			got, _ := feed(r, tc.pkts...)
			if !sameResults(got, tc.want) {
				t.Fatalf("got %v; want %v", got, tc.want)
			}
			checkConserved(t, r.Stats())
		})
	}
}

// withOffset is a copy of the fragment p with its offset set to off.
func withOffset(p []byte, off int) []byte {
	c := append([]byte(nil), p...)
	if c[0]>>4 == 4 {
		fo := binary.BigEndian.Uint16(c[6:])
		binary.BigEndian.PutUint16(c[6:], fo&^ipv4OffsetMask|uint16(off/8))
		fixIPv4(c)
		return c
	}
	fh, _, _, _ := findFragmentHeader(c, false)
	fo := binary.BigEndian.Uint16(c[fh+2:])
	binary.BigEndian.PutUint16(c[fh+2:], fo&7|uint16(off))
	return c
}

// TestIPv6HeaderChain checks the IPv6 header rules: Hop-by-Hop only right
// after the IPv6 header (RFC 8200 §4.3), the whole chain and the
// upper-layer header in the first fragment (RFC 7112), no second Fragment
// header, at most maxExtHeaders headers.
func TestIPv6HeaderChain(t *testing.T) {
	hbh, dst := uint8(header.IPv6HopByHopOptionsExtHdrIdentifier), uint8(header.IPv6DestinationOptionsExtHdrIdentifier)
	frag := uint8(header.IPv6FragmentExtHdrIdentifier)
	udp := func(before, after []uint8) orig {
		return v6(packettest.UDP, packettest.UDPHdr(1, 53, data(2000)), before, after)
	}
	// Destination options, then a 12-byte AH (RFC 4302) before UDP.
	ah := v6(uint8(header.IPv6AuthenticationExtHdrIdentifier), append([]byte{packettest.UDP, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, packettest.UDPHdr(1, 53, data(2000))...), nil, []uint8{dst})
	tests := []struct {
		name string
		o    orig
		pkt  func(orig) []byte
		want result
	}{
		{"hop-by-hop after the fragment header", udp(nil, []uint8{hbh}), func(o orig) []byte { return o.frag(0, 1232) }, dropped(ReasonMalformed)},
		{"hop-by-hop after it in an atomic fragment", udp(nil, []uint8{hbh}), func(o orig) []byte { return o.fragMF(0, o.size(), false) }, dropped(ReasonMalformed)},
		{"hop-by-hop second before it", udp([]uint8{dst, hbh}, nil), func(o orig) []byte { return o.frag(1232, o.size()) }, dropped(ReasonMalformed)},
		{"hop-by-hop first", udp([]uint8{hbh, dst}, nil), func(o orig) []byte { return o.frag(1232, o.size()) }, heldOne},
		{"second fragment header", udp(nil, []uint8{frag}), func(o orig) []byte { return o.frag(0, 1232) }, dropped(ReasonMalformed)},
		{"first fragment without the upper-layer header", udp(nil, []uint8{dst}), func(o orig) []byte { return o.frag(0, 8) }, dropped(ReasonTinyFirst)},
		{"first fragment with a header cut short", udp(nil, []uint8{dst, dst}), func(o orig) []byte { return o.frag(0, 8) }, dropped(ReasonTinyFirst)},
		{"first fragment with only part of udp", udp(nil, []uint8{dst, dst, dst}), func(o orig) []byte { return o.frag(0, 24) }, dropped(ReasonTinyFirst)},
		{"first fragment with the whole chain", udp(nil, []uint8{dst, dst, dst}), func(o orig) []byte { return o.frag(0, 32) }, heldOne},
		{"eight headers", udp([]uint8{hbh, dst, dst}, []uint8{dst, dst, dst, dst}), func(o orig) []byte { return o.frag(0, 1232) }, heldOne},
		{"nine headers", udp([]uint8{hbh, dst, dst}, []uint8{dst, dst, dst, dst, dst}), func(o orig) []byte { return o.frag(0, 1232) }, dropped(ReasonMalformed)},
		{"authentication header after it", ah, func(o orig) []byte { return o.frag(0, 1232) }, heldOne},
		{"authentication header cut short", ah, func(o orig) []byte { return o.frag(0, 16) }, dropped(ReasonTinyFirst)},
		{"unknown upper layer, one byte", v6(99, data(2000), nil, nil), func(o orig) []byte { return o.frag(0, 8) }, heldOne},
		{"no next header", v6(59, nil, nil, []uint8{dst}), func(o orig) []byte { return o.fragMF(0, 8, true) }, heldOne},
		{"atomic with a header cut short", udp(nil, []uint8{dst}), func(o orig) []byte { return cutPayload(o.fragMF(0, o.size(), false), 12) }, dropped(ReasonMalformed)},
		{"header before it cut short", udp([]uint8{hbh, dst}, nil), func(o orig) []byte { return cutPayload(o.frag(1232, o.size()), 12) }, dropped(ReasonMalformed)},
		{"header before it longer than the packet", udp([]uint8{dst}, nil), func(o orig) []byte {
			p := o.frag(1232, o.size())
			p[header.IPv6MinimumSize+1] = 255
			return p
		}, dropped(ReasonMalformed)},
		{"nine headers before it", udp([]uint8{hbh, dst, dst, dst, dst, dst, dst, dst}, nil), func(o orig) []byte { return o.frag(1232, o.size()) }, dropped(ReasonMalformed)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := newTest(defaultMemory)
			if got, _ := feed(r, tc.pkt(tc.o)); got[0] != tc.want {
				t.Errorf("got %v; want %v", got[0], tc.want)
			}
		})
	}
}

// cutPayload is the IPv6 packet p cut to n bytes after its fixed header.
func cutPayload(p []byte, n int) []byte {
	c := append([]byte(nil), p[:header.IPv6MinimumSize+n]...)
	binary.BigEndian.PutUint16(c[4:], uint16(n))
	return c
}

// TestIPv4UpperLayers checks only the transports with a known header
// need one in the first fragment.
func TestIPv4UpperLayers(t *testing.T) {
	gre := v4(47, data(100))
	r, _ := newTest(defaultMemory)
	if got, _ := feed(r, gre.frag(0, 8), gre.frag(8, gre.size())); got[1] != complete {
		t.Errorf("gre: got %v; want complete", got)
	}
}

// TestMalformed feeds what is not a fragment at all.
func TestMalformed(t *testing.T) {
	u4, u6 := udp4(100), udp6(100)
	truncated := u4.frag(0, 48)
	binary.BigEndian.PutUint16(truncated[2:], uint16(len(truncated)+1))
	fixIPv4(truncated)
	jumbo := u6.frag(0, 48)
	binary.BigEndian.PutUint16(jumbo[4:], 0)
	shortFH := append([]byte(nil), u6.frag(0, 48)[:44]...)
	binary.BigEndian.PutUint16(shortFH[4:], 4)
	for _, tc := range []struct {
		name string
		pkt  []byte
	}{
		{"empty", nil},
		{"version 5", []byte{0x50, 0, 0, 0}},
		{"short ipv4", u4.frag(0, 48)[:19]},
		{"ipv4 total length past the buffer", truncated},
		{"ipv4 not a fragment", u4.pkt},
		{"short ipv6", u6.frag(0, 48)[:39]},
		{"ipv6 jumbo", jumbo},
		{"ipv6 no fragment header", u6.pkt},
		{"ipv6 fragment header cut", shortFH},
	} {
		r, _ := newTest(defaultMemory)
		if got, _ := feed(r, tc.pkt); got[0] != dropped(ReasonMalformed) {
			t.Errorf("%s: got %v; want malformed", tc.name, got[0])
		}
	}
}

// TestTooManyFragments checks a datagram holds at most maxFragments
// fragments: one more that would not complete it discards it.
func TestTooManyFragments(t *testing.T) {
	o := udp4(8*(maxFragments+2) - 8)
	fs := o.every(8) // maxFragments+2 fragments
	r, _ := newTest(defaultMemory)
	got, _ := feed(r, fs[:maxFragments+1]...)
	if want := append(held(maxFragments), dropped(ReasonTooManyFragments)); !sameResults(got, want) {
		t.Fatalf("got %v; want %v", got[len(got)-3:], want[len(want)-3:])
	}
	st := r.Stats()
	if st.DatagramsDropped[ReasonTooManyFragments] != 1 || st.FragmentsDropped[ReasonTooManyFragments] != maxFragments+1 {
		t.Errorf("got %d datagrams, %d fragments dropped; want 1, %d", st.DatagramsDropped[ReasonTooManyFragments], st.FragmentsDropped[ReasonTooManyFragments], maxFragments+1)
	}
	checkConserved(t, st)
}

// TestOutTooSmall checks Add refuses an out that cannot hold every
// datagram, on the first call.
func TestOutTooSmall(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Errorf("Add with a short out did not panic")
		}
	}()
	r, _ := newTest(defaultMemory)
	r.Add(udp4(100).frag(0, 48), make([]byte, MaxDatagram-1))
}
