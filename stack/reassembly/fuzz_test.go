package reassembly

import (
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tungate/tungate/internal/units"
	"github.com/tungate/tungate/stack/packet/packettest"
)

// fuzzOrigs are the datagrams FuzzAdd cuts up: both families, options,
// extension headers on both sides of the Fragment header.
var fuzzOrigs = []orig{
	udp4(3000),
	withOptions4(tcp4(900)),
	v4(packettest.ICMP, packettest.EchoHdr(false, 1, 1, data(700))),
	udp6(3000),
	v6(packettest.TCP, packettest.TCPHdr(1, 80, 1, 1, 0x10, data(900)), []uint8{uint8(header.IPv6HopByHopOptionsExtHdrIdentifier)}, []uint8{uint8(header.IPv6DestinationOptionsExtHdrIdentifier)}),
}

const fuzzBudget = 16 << 10

// extent is a fragment's place in the fragmentable part.
type extent struct{ start, end int }

// fuzzModel is what FuzzAdd knows the Reassembler holds of the fuzzed
// datagram: the honest fragments it answered Held to since the datagram
// was created, and whether it has been discarded. unknown means an
// eviction may have taken it, so only the weaker checks apply.
type fuzzModel struct {
	held     []extent
	dead     bool
	unknown  bool
	born     time.Time // when the held datagram was created
	lastHeld time.Time
}

// FuzzAdd feeds a Reassembler fragments of one datagram, honest or not,
// in any order, with garbage, fragments of other datagrams and clock
// steps in between. An input is a datagram choice (an index into
// fuzzOrigs), then triples (op, a, b); for ops 0-5, 8 and 9, a and b cut
// the extent [start, end) of the fragmentable part. By op%10:
//
//	0, 1  an honest fragment, in units of about a sixteenth of the datagram
//	2     an honest fragment in 8-byte units, a and b's low bits the start
//	3     the More flag wrong
//	4     the last byte changed
//	5     one byte changed, header or data
//	6     a bytes of garbage taken from the input
//	7     the clock a%64 seconds on, then Expire if b is odd
//	8     a fragment of one of 256 other datagrams (b picks it), to fill the budget
//	9     data moved near the 65,535-byte limit
//
// It checks that nothing panics, that memory stays within the budget,
// that Add takes only what IsFragment calls a fragment, that a completed
// datagram built only from honest fragments is the original byte for
// byte and was a disjoint cover of it, that no datagram completes after
// it was discarded, and that every fragment is accounted for and nothing
// is left once the clock runs out.
func FuzzAdd(f *testing.F) {
	for _, seed := range fuzzSeeds {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in []byte) { fuzzAdd(t, in) })
}

// fuzzAdd runs one FuzzAdd input and returns the counts from before the
// final expiry.
func fuzzAdd(t *testing.T, in []byte) Stats {
	if len(in) == 0 {
		return Stats{}
	}
	o := fuzzOrigs[int(in[0])%len(fuzzOrigs)]
	clock := newClock()
	r := New(Config{Memory: fuzzBudget, Timeout: units.Duration(30 * time.Second)}, clock.now)
	out := make([]byte, MaxDatagram)
	var ours fragment
	parse(o.frag(8, 16), &ours)
	size := o.size()
	unit := 8 * max(1, size/(8*16))
	var m fuzzModel
	tainted := false // a fragment of ours not cut honestly reached the Reassembler

	for ops := in[1:]; len(ops) >= 3; {
		op, a, b := ops[0], int(ops[1]), int(ops[2])
		ops = ops[3:]
		start, end := a%17*unit, a%17*unit+(b%17+1)*unit
		if op%10 == 2 {
			start = (a | b&0xf<<8) * 8
			end = start + (b>>4+1)*8
		}
		end = min(end, size)
		if start >= size && op%10 != 6 && op%10 != 7 {
			continue
		}
		var pkt []byte
		honest := false
		switch op % 10 {
		case 0, 1, 2:
			pkt, honest = o.frag(start, end), true
		case 3:
			pkt = o.fragMF(start, end, end == size)
		case 4:
			pkt = flipped(o.frag(start, end))
		case 5:
			pkt = o.frag(start, end)
			pkt[b%len(pkt)] ^= byte(a) | 1
		case 6:
			n := min(a, len(ops))
			pkt, ops = append([]byte(nil), ops[:n]...), ops[n:]
		case 7:
			clock.advance(time.Duration(a%64) * time.Second)
			if b&1 != 0 {
				r.Expire()
			}
			m.timeout(clock.now())
			continue
		case 8:
			pkt = withID(o, o.id^uint32(b+1)<<8).frag(start, end)
		case 9:
			pkt = withOffset(o.frag(start, end), maxIPPayload+1-8*(b%16+1)-(end-start)&^7)
		}
		var pf fragment
		mine := parse(append([]byte(nil), pkt...), &pf) == ReasonNone && !pf.atomic && pf.key == ours.key
		if mine && !honest {
			tainted = true
		}
		isFrag := IsFragment(pkt)
		before := r.Stats()
		n, res, why := r.Add(pkt, out)
		after := r.Stats()
		if why != ReasonMalformed && !isFrag {
			t.Fatalf("Add took %x (%v/%v), which IsFragment says is no fragment", pkt, res, why)
		}
		if after.MemoryInUse > fuzzBudget {
			t.Fatalf("memory %d over the budget %d", after.MemoryInUse, fuzzBudget)
		}
		if after.DatagramsDropped[ReasonMemory] != before.DatagramsDropped[ReasonMemory] || after.Tombstones < before.Tombstones {
			m.unknown = true
		}
		if res == Complete {
			got := out[:n]
			if IsFragment(got) {
				t.Fatalf("completed datagram is a fragment: %x", got)
			}
			if got[0]>>4 == 4 && !header.IPv4(got).IsChecksumValid() {
				t.Fatalf("completed IPv4 datagram with a bad header checksum")
			}
			if mine && !tainted && string(got) != string(o.pkt) {
				t.Fatalf("honest fragments completed a different datagram:\ngot  %x\nwant %x", got, o.pkt)
			}
		}
		if mine && honest && !tainted {
			m.observe(t, extent{start, end}, size, res, why, clock.now())
		}
	}
	st := r.Stats()
	checkConserved(t, st)
	clock.advance(time.Hour)
	r.Expire()
	if end := r.Stats(); end.FragmentsHeld != 0 || end.DatagramsHeld != 0 || end.Tombstones != 0 || end.MemoryInUse != 0 {
		t.Fatalf("after the timeout: %+v", end)
	}
	checkConserved(t, r.Stats())
	return st
}

// timeout forgets what the Reassembler has timed out by now.
func (m *fuzzModel) timeout(now time.Time) {
	switch {
	case !m.unknown && !m.born.IsZero() && !now.Before(m.born.Add(30*time.Second)),
		m.unknown && !now.Before(m.lastHeld.Add(30*time.Second)):
		*m = fuzzModel{}
	}
}

// observe checks the Reassembler's answer to an honest fragment e of
// ours against the model, then updates it.
func (m *fuzzModel) observe(t *testing.T, e extent, size int, res Result, why Reason, now time.Time) {
	t.Helper()
	m.timeout(now)
	switch res {
	case Held:
		if m.dead && !m.unknown {
			t.Fatalf("%v held after its datagram was discarded", e)
		}
		if len(m.held) == 0 && !m.dead {
			m.born = now
		}
		m.held = append(m.held, e)
		m.lastHeld = now
	case Complete:
		if !m.unknown {
			if m.dead {
				t.Fatalf("%v completed a discarded datagram", e)
			}
			covered := 0
			for i, h := range append(m.held, e) {
				covered += h.end - h.start
				for _, g := range m.held[:min(i, len(m.held))] {
					if h.start < g.end && g.start < h.end {
						t.Fatalf("completed from overlapping fragments %v and %v", g, h)
					}
				}
			}
			if covered != size {
				t.Fatalf("completed from %d bytes of %d", covered, size)
			}
		}
		*m = fuzzModel{}
	case Dropped:
		if why == ReasonOverlap && !m.unknown && !m.dead {
			found := false
			for _, h := range m.held {
				found = found || h != e && h.start < e.end && e.start < h.end
			}
			if !found {
				t.Fatalf("%v dropped as an overlap of nothing held (%v)", e, m.held)
			}
		}
		if why == ReasonDuplicate && !m.unknown {
			found := false
			for _, h := range m.held {
				found = found || h == e
			}
			if !found {
				t.Fatalf("%v dropped as a duplicate of nothing held (%v)", e, m.held)
			}
		}
		if why.DiscardsDatagram() && len(m.held) > 0 {
			m.dead, m.held = true, nil
		}
	}
}
