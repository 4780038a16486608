package tun

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

func TestVirtioNetHdrCodec(t *testing.T) {
	cases := []struct {
		name string
		wire []byte
		want VirtioNetHdr
		err  error
	}{
		{"plain", make([]byte, 10), VirtioNetHdr{}, nil},
		{"needs csum", []byte{1, 0, 0, 0, 0, 0, 20, 0, 16, 0}, VirtioNetHdr{Flags: 1, CsumStart: 20, CsumOffset: 16}, nil},
		{"data valid", []byte{2, 0, 0, 0, 0, 0, 0, 0, 0, 0}, VirtioNetHdr{Flags: 2}, nil},
		{"tso4", []byte{1, 1, 52, 0, 0xa8, 0x05, 20, 0, 16, 0}, VirtioNetHdr{1, 1, 52, 1448, 20, 16}, nil},
		{"tso6 ecn", []byte{1, 0x84, 72, 0, 0x94, 0x05, 40, 0, 16, 0}, VirtioNetHdr{1, 0x84, 72, 1428, 40, 16}, nil},
		{"short", make([]byte, 9), VirtioNetHdr{}, errVnetShort},
		{"unknown flag", []byte{4, 0, 0, 0, 0, 0, 0, 0, 0, 0}, VirtioNetHdr{}, errVnetFlags},
		{"udp ufo", []byte{1, 3, 0, 0, 0x10, 0, 20, 0, 6, 0}, VirtioNetHdr{}, errVnetGSO},
		{"uso", []byte{1, 5, 0, 0, 0x10, 0, 20, 0, 6, 0}, VirtioNetHdr{}, errVnetGSO},
		{"ecn alone", []byte{0, 0x80, 0, 0, 0, 0, 0, 0, 0, 0}, VirtioNetHdr{}, errVnetGSO},
		{"tso without size", []byte{1, 1, 52, 0, 0, 0, 20, 0, 16, 0}, VirtioNetHdr{}, errVnetGSO},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var h VirtioNetHdr
			err := h.Decode(c.wire)
			if !errors.Is(err, c.err) {
				t.Fatalf("Decode = %v, want %v", err, c.err)
			}
			if err != nil {
				return
			}
			if h != c.want {
				t.Fatalf("Decode = %+v, want %+v", h, c.want)
			}
			out := make([]byte, VirtioNetHdrLen)
			h.Encode(out)
			if !bytes.Equal(out, c.wire[:VirtioNetHdrLen]) {
				t.Fatalf("Encode = %x, want %x", out, c.wire)
			}
		})
	}
}

// FuzzVirtioNetHdr: whatever decodes re-encodes to the same bytes, and a
// decoded header never sends the segmenter or the checksum completion out
// of bounds.
func FuzzVirtioNetHdr(f *testing.F) {
	f.Add([]byte{1, 1, 52, 0, 0xa8, 0x05, 20, 0, 16, 0}, superpacket4(3000, 1448, 0x18)[VirtioNetHdrLen:])
	f.Add([]byte{1, 4, 72, 0, 0x94, 0x05, 40, 0, 16, 0}, superpacket6(5000, 1428, 0x19)[VirtioNetHdrLen:])
	f.Add([]byte{1, 0, 0, 0, 0, 0, 20, 0, 6, 0}, []byte{0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, []byte{})
	f.Fuzz(func(t *testing.T, hdr, pkt []byte) {
		var h VirtioNetHdr
		if h.Decode(hdr) != nil {
			return
		}
		out := make([]byte, VirtioNetHdrLen)
		h.Encode(out)
		if !bytes.Equal(out, hdr[:VirtioNetHdrLen]) {
			t.Fatalf("round trip %x -> %x", hdr[:VirtioNetHdrLen], out)
		}
		if h.GSOType == VirtioNetHdrGSONone {
			if h.Flags&VirtioNetHdrFNeedsCsum != 0 {
				_ = completeChecksum(pkt, &h)
			}
			return
		}
		var s segmenter
		if s.reset(pkt, &h) != nil {
			return
		}
		buf := make([]byte, len(pkt))
		payload := 0
		for n := 0; !s.done(); n++ {
			k, err := s.next(buf)
			if err != nil {
				t.Fatalf("segment %d: %v", n, err)
			}
			if k > s.hdrs+s.mss {
				t.Fatalf("segment %d of %d bytes, more than headers %d + mss %d", n, k, s.hdrs, s.mss)
			}
			payload += k - s.hdrs
		}
		if payload != len(pkt)-s.hdrs {
			t.Fatalf("segments carry %d payload bytes, superpacket %d", payload, len(pkt)-s.hdrs)
		}
	})
}

func TestCompleteChecksum(t *testing.T) {
	// A UDP/IPv4 datagram whose checksum field holds the pseudo-header
	// sum, as the kernel hands over a CHECKSUM_PARTIAL packet.
	p := []byte{0x45, 0, 0, 32, 0, 0, 0, 0, 64, 17, 0, 0, 198, 18, 1, 2, 198, 18, 2, 2,
		0x30, 0x39, 0x14, 0x51, 0, 12, 0, 0, 'd', 'a', 't', 'a'}
	binary.BigEndian.PutUint16(p[10:], checksum(p[:20]))
	binary.BigEndian.PutUint16(p[26:], ^checksum(pseudo(p, 17, 12)))
	h := VirtioNetHdr{Flags: VirtioNetHdrFNeedsCsum, CsumStart: 20, CsumOffset: 6}
	if err := completeChecksum(p, &h); err != nil {
		t.Fatal(err)
	}
	if got := checksum(append(pseudo(p, 17, 12), p[20:]...)); got != 0 {
		t.Fatalf("completed UDP checksum does not verify (residue %#x)", got)
	}
	for _, bad := range []VirtioNetHdr{{CsumStart: 32, CsumOffset: 0}, {CsumStart: 20, CsumOffset: 11}, {CsumStart: 0xffff, CsumOffset: 0xffff}} {
		if err := completeChecksum(p, &bad); !errors.Is(err, errVnetCsum) {
			t.Errorf("completeChecksum(%+v) = %v, want errVnetCsum", bad, err)
		}
	}
}

// TestSegmenter cuts superpackets of both families and checks each segment
// the way a receiver would: checksums, lengths, sequence numbers, flags,
// and the payload put back together.
func TestSegmenter(t *testing.T) {
	cases := []struct {
		name    string
		wire    []byte
		payload int
		mss     int
		flags   uint8
	}{
		{"ipv4 even", superpacket4(4*1448, 1448, 0x18), 4 * 1448, 1448, 0x18},
		{"ipv4 tail", superpacket4(10000, 1448, 0x19|0x80), 10000, 1448, 0x19 | 0x80},
		{"ipv4 one", superpacket4(100, 1448, 0x18), 100, 1448, 0x18},
		{"ipv6 tail", superpacket6(65000-72, 1428, 0x19), 65000 - 72, 1428, 0x19},
		{"ipv6 small mss", superpacket6(3000, 536, 0x10), 3000, 536, 0x10},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var h VirtioNetHdr
			if err := h.Decode(c.wire); err != nil {
				t.Fatal(err)
			}
			pkt := c.wire[VirtioNetHdrLen:]
			orig := append([]byte(nil), pkt...)
			var s segmenter
			if err := s.reset(pkt, &h); err != nil {
				t.Fatal(err)
			}
			l4 := 20
			if pkt[0]>>4 == 6 {
				l4 = 40
			}
			hdrs := l4 + 32
			seq0 := binary.BigEndian.Uint32(orig[l4+4:])
			var got []byte
			nseg := (c.payload + c.mss - 1) / c.mss
			out := make([]byte, 1500)
			for i := 0; i < nseg; i++ {
				if s.done() {
					t.Fatalf("done after %d of %d segments", i, nseg)
				}
				n, err := s.next(out)
				if err != nil {
					t.Fatal(err)
				}
				seg := out[:n]
				want := min(c.mss, c.payload-i*c.mss)
				if n != hdrs+want {
					t.Fatalf("segment %d: %d bytes, want %d", i, n, hdrs+want)
				}
				tcp := seg[l4:]
				if l4 == 20 {
					if checksum(seg[:20]) != 0 {
						t.Fatalf("segment %d: IPv4 header checksum wrong", i)
					}
					if got := binary.BigEndian.Uint16(seg[2:]); int(got) != n {
						t.Fatalf("segment %d: total length %d, want %d", i, got, n)
					}
					if id := binary.BigEndian.Uint16(seg[4:]); id != 0x1234+uint16(i) {
						t.Fatalf("segment %d: IP ID %#x", i, id)
					}
				} else if got := binary.BigEndian.Uint16(seg[4:]); int(got) != n-40 {
					t.Fatalf("segment %d: payload length %d, want %d", i, got, n-40)
				}
				if checksum(append(pseudo(seg, 6, len(tcp)), tcp...)) != 0 {
					t.Fatalf("segment %d: TCP checksum wrong", i)
				}
				if seq := binary.BigEndian.Uint32(tcp[4:]); seq != seq0+uint32(i*c.mss) {
					t.Fatalf("segment %d: seq %d, want %d", i, seq, seq0+uint32(i*c.mss))
				}
				wantFlags := c.flags
				if i != nseg-1 {
					wantFlags &^= 0x01 | 0x08
				}
				if i != 0 {
					wantFlags &^= 0x80
				}
				if tcp[13] != wantFlags {
					t.Fatalf("segment %d: flags %#x, want %#x", i, tcp[13], wantFlags)
				}
				if !bytes.Equal(tcp[20:32], orig[l4+20:l4+32]) {
					t.Fatalf("segment %d: TCP options changed", i)
				}
				got = append(got, seg[hdrs:]...)
			}
			if !s.done() {
				t.Fatalf("not done after %d segments", nseg)
			}
			if !bytes.Equal(got, orig[hdrs:]) {
				t.Fatal("segments' payload differs from the superpacket's")
			}
		})
	}
}

func TestSegmenterRejects(t *testing.T) {
	good4 := superpacket4(3000, 1448, 0x18)
	good6 := superpacket6(3000, 1448, 0x18)
	mut := func(b []byte, f func([]byte)) []byte { b = append([]byte(nil), b...); f(b); return b }
	cases := []struct {
		name string
		wire []byte
	}{
		{"udp", mut(good4, func(b []byte) { b[VirtioNetHdrLen+9] = 17 })},
		{"v6 type on v4", mut(good4, func(b []byte) { b[1] = VirtioNetHdrGSOTCPv6 })},
		{"v4 type on v6", mut(good6, func(b []byte) { b[1] = VirtioNetHdrGSOTCPv4 })},
		{"csum start elsewhere", mut(good4, func(b []byte) { b[6] = 24 })},
		{"truncated tcp header", good4[:VirtioNetHdrLen+30]},
		{"ipv6 ext header without csum start", mut(good6, func(b []byte) { b[VirtioNetHdrLen+6] = 0; b[0] = 0 })},
		{"version 5", mut(good4, func(b []byte) { b[VirtioNetHdrLen] = 0x55 })},
	}
	for _, c := range cases {
		var h VirtioNetHdr
		if err := h.Decode(c.wire); err != nil {
			continue // rejected earlier: fine too
		}
		var s segmenter
		if err := s.reset(c.wire[VirtioNetHdrLen:], &h); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
	var h VirtioNetHdr
	_ = h.Decode(good4)
	var s segmenter
	if err := s.reset(good4[VirtioNetHdrLen:], &h); err != nil {
		t.Fatal(err)
	}
	if _, err := s.next(make([]byte, 100)); !errors.Is(err, io.ErrShortBuffer) {
		t.Errorf("next into 100 bytes = %v, want io.ErrShortBuffer", err)
	}
}

func TestSegmenterAllocs(t *testing.T) {
	wire := superpacket4(64000, 1448, 0x18)
	var h VirtioNetHdr
	_ = h.Decode(wire)
	out := make([]byte, 1500)
	var s segmenter
	allocs := testing.AllocsPerRun(100, func() {
		_ = s.reset(wire[VirtioNetHdrLen:], &h)
		for !s.done() {
			_, _ = s.next(out)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per superpacket", allocs)
	}
}

func BenchmarkSegmenter(b *testing.B) {
	wire := superpacket4(64000, 1448, 0x18)
	var h VirtioNetHdr
	_ = h.Decode(wire)
	out := make([]byte, 1500)
	var s segmenter
	b.ReportAllocs()
	b.SetBytes(64000)
	for b.Loop() {
		_ = s.reset(wire[VirtioNetHdrLen:], &h)
		for !s.done() {
			_, _ = s.next(out)
		}
	}
}

// superpacket4 builds what an offload TUN reads for a TCP/IPv4
// superpacket: the virtio-net header, then IPv4 and TCP (with 12 bytes of
// timestamp options) with the pseudo-header sum in the checksum field.
func superpacket4(payload, mss int, flags uint8) []byte {
	n := 20 + 32 + payload
	b := make([]byte, VirtioNetHdrLen+n)
	h := VirtioNetHdr{Flags: VirtioNetHdrFNeedsCsum, GSOType: VirtioNetHdrGSOTCPv4, HdrLen: 52, GSOSize: uint16(mss), CsumStart: 20, CsumOffset: 16}
	h.Encode(b)
	p := b[VirtioNetHdrLen:]
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(n))
	binary.BigEndian.PutUint16(p[4:], 0x1234)
	p[8], p[9] = 64, 6
	copy(p[12:], []byte{198, 18, 1, 2, 198, 18, 2, 2})
	binary.BigEndian.PutUint16(p[10:], checksum(p[:20]))
	fillTCP(p, 20, payload, flags)
	return b
}

// superpacket6 is superpacket4 over IPv6.
func superpacket6(payload, mss int, flags uint8) []byte {
	n := 40 + 32 + payload
	b := make([]byte, VirtioNetHdrLen+n)
	h := VirtioNetHdr{Flags: VirtioNetHdrFNeedsCsum, GSOType: VirtioNetHdrGSOTCPv6, HdrLen: 72, GSOSize: uint16(mss), CsumStart: 40, CsumOffset: 16}
	h.Encode(b)
	p := b[VirtioNetHdrLen:]
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:], uint16(n-40))
	p[6], p[7] = 6, 64
	copy(p[8:], []byte{0x20, 0x01, 0, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2})
	copy(p[24:], []byte{0x20, 0x01, 0, 2, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2})
	fillTCP(p, 40, payload, flags)
	return b
}

func fillTCP(p []byte, l4, payload int, flags uint8) {
	tcp := p[l4:]
	binary.BigEndian.PutUint16(tcp[0:], 40000)
	binary.BigEndian.PutUint16(tcp[2:], 5201)
	binary.BigEndian.PutUint32(tcp[4:], 0xfffff000) // wraps within the superpacket
	binary.BigEndian.PutUint32(tcp[8:], 77)
	tcp[12] = 8 << 4
	tcp[13] = flags
	binary.BigEndian.PutUint16(tcp[14:], 512)
	copy(tcp[20:], []byte{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2})
	for i := range payload {
		tcp[32+i] = byte(i*7 + i>>8)
	}
	// The pseudo-header sum (not complemented), as CHECKSUM_PARTIAL has it.
	binary.BigEndian.PutUint16(tcp[16:], ^checksum(pseudo(p, 6, len(p)-l4)))
}

// pseudo is the pseudo header of IP packet p for an l4 of l4Len bytes.
func pseudo(p []byte, proto uint8, l4Len int) []byte {
	var ph []byte
	if p[0]>>4 == 4 {
		ph = append(ph, p[12:20]...)
		ph = append(ph, 0, proto, byte(l4Len>>8), byte(l4Len))
	} else {
		ph = append(ph, p[8:40]...)
		ph = append(ph, 0, 0, byte(l4Len>>8), byte(l4Len), 0, 0, 0, proto)
	}
	return ph
}
