package egress

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
)

func newTestFamily(next uint16) *pingFamily {
	return &pingFamily{waiters: make(map[uint16]*echoWaiter), next: next}
}

func TestDeliverMatchesIDSeqAndSource(t *testing.T) {
	f := newTestFamily(100)
	dst := netip.MustParseAddr("192.0.2.1")
	id, w, err := f.register(dst, 7)
	if err != nil {
		t.Fatal(err)
	}
	ignored := []struct {
		name string
		src  netip.Addr
		r    echoReply
	}{
		{"other identifier", dst, echoReply{id: id + 1, seq: 7, payload: []byte("other id")}},
		{"other sequence", dst, echoReply{id: id, seq: 8, payload: []byte("other seq")}},
		{"other source", netip.MustParseAddr("192.0.2.2"), echoReply{id: id, seq: 7, payload: []byte("other source")}},
		{"v4-mapped source", netip.MustParseAddr("::ffff:192.0.2.1"), echoReply{id: id, seq: 7, payload: []byte("mapped")}},
	}
	for _, tc := range ignored {
		f.deliver(tc.src, tc.r)
		select {
		case got := <-w.reply:
			t.Errorf("%s: got %q delivered; want it ignored", tc.name, got)
		default:
		}
	}

	f.deliver(dst, echoReply{id: id, seq: 7, payload: []byte("first")})
	f.deliver(dst, echoReply{id: id, seq: 7, payload: []byte("duplicate")}) // must not block
	if got, want := string(<-w.reply), "first"; got != want {
		t.Errorf("got %q; want %q", got, want)
	}

	f.unregister(id)
	f.deliver(dst, echoReply{id: id, seq: 7, payload: []byte("late")})
	select {
	case got := <-w.reply:
		t.Errorf("reply after unregister: got %q delivered; want it ignored", got)
	default:
	}
}

func TestRegisterIdentifiers(t *testing.T) {
	f := newTestFamily(0xfffe)
	dst := netip.MustParseAddr("2001:db8::1")
	var got []uint16
	for range 3 {
		id, _, err := f.register(dst, 1)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, id)
	}
	if want := []uint16{0xfffe, 0xffff, 0}; !slices.Equal(got, want) {
		t.Errorf("identifiers from 0xfffe: got %#x; want %#x", got, want)
	}

	for len(f.waiters) < 1<<16 {
		if _, _, err := f.register(dst, 1); err != nil {
			t.Fatalf("register with %d in flight: %v", len(f.waiters), err)
		}
	}
	if _, _, err := f.register(dst, 1); !errors.Is(err, errEchoIDsExhausted) {
		t.Fatalf("register with every identifier in flight: got %v; want %v", err, errEchoIDsExhausted)
	}
	f.unregister(0x1234)
	if id, _, err := f.register(dst, 1); err != nil || id != 0x1234 {
		t.Errorf("register after freeing 0x1234: got %#x, %v; want 0x1234, nil", id, err)
	}
}
