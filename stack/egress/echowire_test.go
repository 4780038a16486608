package egress

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"
)

// internetChecksum is RFC 1071, written out independently of x/net so the
// tests check x/net's arithmetic rather than repeat it.
func internetChecksum(b []byte) uint16 {
	var sum uint32
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

func mustEchoRequest(t testing.TB, v6 bool, id, seq uint16, payload []byte) []byte {
	t.Helper()
	b, err := marshalEchoRequest(v6, id, seq, payload)
	if err != nil {
		t.Fatalf("marshalEchoRequest: %v", err)
	}
	return b
}

// asReply turns an echo request into the reply a responder sends: same
// identifier, sequence and data, the reply type, and (v4) a fresh checksum.
// The ICMPv6 checksum stays as it was; parsing does not look at it.
func asReply(req []byte, v6 bool) []byte {
	r := bytes.Clone(req)
	if v6 {
		r[0] = 129
		return r
	}
	r[0] = 0
	r[2], r[3] = 0, 0
	binary.BigEndian.PutUint16(r[2:], internetChecksum(r))
	return r
}

func TestMarshalEchoRequestV4(t *testing.T) {
	// Worked by hand: words 0x0800 + 0x0001 + 0x0001 = 0x0802, complement 0xf7fd.
	got := mustEchoRequest(t, false, 1, 1, nil)
	want := []byte{8, 0, 0xf7, 0xfd, 0, 1, 0, 1}
	if !bytes.Equal(got, want) {
		t.Fatalf("got % x; want % x", got, want)
	}
	for _, n := range []int{0, 1, 7, 56, 1472} {
		payload := bytes.Repeat([]byte{0x5c}, n)
		msg := mustEchoRequest(t, false, 0xbeef, uint16(n), payload)
		if got, want := internetChecksum(msg), uint16(0); got != want {
			t.Errorf("payload %d: checksum over the message: got %#x; want %#x", n, got, want)
		}
		if got, want := msg[8:], payload; !bytes.Equal(got, want) {
			t.Errorf("payload %d: got % x; want % x", n, got, want)
		}
	}
}

func TestMarshalEchoRequestV6(t *testing.T) {
	got := mustEchoRequest(t, true, 0x1234, 0xfffe, []byte("x"))
	// Type 128, code 0, checksum zero for the kernel to fill in.
	want := []byte{128, 0, 0, 0, 0x12, 0x34, 0xff, 0xfe, 'x'}
	if !bytes.Equal(got, want) {
		t.Errorf("got % x; want % x", got, want)
	}
}

func TestParseEchoReplyRoundTrip(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		for _, payload := range [][]byte{nil, []byte("payload"), bytes.Repeat([]byte{0xa5}, 1473)} {
			reply := asReply(mustEchoRequest(t, v6, 0x1234, 0x5678, payload), v6)
			got, ok := parseEchoReply(reply, v6)
			want := echoReply{id: 0x1234, seq: 0x5678, payload: payload}
			if !ok || got.id != want.id || got.seq != want.seq || !bytes.Equal(got.payload, want.payload) {
				t.Errorf("v6=%v payload %d: got %+v, %v; want %+v, true", v6, len(payload), got, ok, want)
			}
			if len(payload) > 0 {
				reply[len(reply)-1] ^= 0xff
				if got.payload[len(payload)-1] != payload[len(payload)-1] {
					t.Errorf("v6=%v: the payload aliases the read buffer", v6)
				}
			}
		}
	}
}

func TestParseEchoReplyRefuses(t *testing.T) {
	v4Reply := asReply(mustEchoRequest(t, false, 7, 9, []byte("abc")), false)
	v6Reply := asReply(mustEchoRequest(t, true, 7, 9, []byte("abc")), true)
	with := func(b []byte, at int, v byte) []byte { b = bytes.Clone(b); b[at] = v; return b }
	type refusal struct {
		name string
		b    []byte
		v6   bool
	}
	tests := []refusal{
		{"v4 echo request", mustEchoRequest(t, false, 7, 9, []byte("abc")), false},
		{"v6 echo request", mustEchoRequest(t, true, 7, 9, []byte("abc")), true},
		{"v4 reply read as v6", v4Reply, true},
		{"v6 reply read as v4", v6Reply, false},
		{"v4 non-zero code", asReply(with(mustEchoRequest(t, false, 7, 9, nil), 1, 1), false), false},
		{"v6 non-zero code", with(v6Reply, 1, 1), true},
		{"v4 bad checksum", with(v4Reply, 3, v4Reply[3]^1), false},
		{"v4 corrupt payload", with(v4Reply, 8, 'x'), false},
		{"v4 port unreachable", []byte{3, 3, 0xfc, 0xfc, 0, 0, 0, 0, 0x45, 0, 0, 0x1c}, false},
		{"v6 port unreachable", []byte{1, 4, 0, 0, 0, 0, 0, 0}, true},
		{"v6 neighbour solicitation", append([]byte{135}, make([]byte, 23)...), true},
		{"empty", nil, false},
		{"empty v6", nil, true},
		{"garbage", bytes.Repeat([]byte{0xff}, 9), false},
	}
	for n := range 8 {
		tests = append(tests,
			refusal{fmt.Sprintf("v4 truncated to %d", n), v4Reply[:n], false},
			refusal{fmt.Sprintf("v6 truncated to %d", n), v6Reply[:n], true})
	}
	for _, tc := range tests {
		if got, ok := parseEchoReply(tc.b, tc.v6); ok {
			t.Errorf("%s (% x): got %+v, true; want refused", tc.name, tc.b, got)
		}
	}
}

// FuzzParseEcho checks that parseEchoReply never panics and that whatever
// it accepts is an echo reply whose fields it read from the right bytes.
func FuzzParseEcho(f *testing.F) {
	for _, v6 := range []bool{false, true} {
		req, err := marshalEchoRequest(v6, 1, 2, []byte("abc"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(req, v6)
		f.Add(asReply(req, v6), v6)
	}
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0}, false)
	f.Fuzz(func(t *testing.T, in []byte, v6 bool) {
		b := bytes.Clone(in)
		r, ok := parseEchoReply(b, v6)
		if !ok {
			return
		}
		replyType := byte(0)
		if v6 {
			replyType = 129
		}
		if len(b) < 8 || b[0] != replyType || b[1] != 0 {
			t.Fatalf("accepted % x, which is not an echo reply", b)
		}
		if !v6 && internetChecksum(b) != 0 {
			t.Fatalf("accepted % x with a bad checksum", b)
		}
		if r.id != binary.BigEndian.Uint16(b[4:]) || r.seq != binary.BigEndian.Uint16(b[6:]) || !bytes.Equal(r.payload, b[8:]) {
			t.Fatalf("got %+v from % x", r, b)
		}
		if len(r.payload) > 0 {
			b[len(b)-1] ^= 0xff
			if r.payload[len(r.payload)-1] == b[len(b)-1] {
				t.Fatal("the payload aliases the input")
			}
		}
		// A request carrying the same fields comes back as the same reply.
		req, err := marshalEchoRequest(v6, r.id, r.seq, r.payload)
		if err != nil {
			t.Fatal(err)
		}
		re, ok := parseEchoReply(asReply(req, v6), v6)
		if !ok || re.id != r.id || re.seq != r.seq || !bytes.Equal(re.payload, r.payload) {
			t.Fatalf("round trip changed %+v into %+v (ok=%v)", r, re, ok)
		}
	})
}
