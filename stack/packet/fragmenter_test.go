package packet

import (
	"bytes"
	"testing"

	"github.com/tungate/tungate/stack/packet/packettest"
)

// TestFragmentMatchesOracle: the gateway's fragmenter cuts a datagram
// exactly as the test oracle does, and refuses what must not be cut.
func TestFragmentMatchesOracle(t *testing.T) {
	for _, fam := range families() {
		pkt := packettest.IP(fam.srv, fam.cli, ProtoICMP, packettest.EchoHdr(fam.cli.Is6(), 7, 1, make([]byte, 3000)))
		if fam.cli.Is4() {
			pkt[6] &^= 0x40 // clear DF
			h := pkt[:20]
			h[10], h[11] = 0, 0
			var sum uint32
			for i := 0; i < 20; i += 2 {
				sum += uint32(h[i])<<8 | uint32(h[i+1])
			}
			for sum > 0xffff {
				sum = sum>>16 + sum&0xffff
			}
			h[10], h[11] = byte(^sum>>8), byte(^sum)
		}
		room := 1500 - 20 // IPv4 header
		if fam.cli.Is6() {
			room = 1500 - 40 - 8 // IPv6 header and Fragment header
		}
		want := packettest.Fragments(pkt, room, 9)
		var got [][]byte
		scratch := make([]byte, 1500)
		if !Fragment(pkt, 1500, 9, scratch, func(f []byte) { got = append(got, bytes.Clone(f)) }) {
			t.Fatalf("%s: refused", fam.name)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d fragments; want %d", fam.name, len(got), len(want))
		}
		for i := range got {
			if len(got[i]) > 1500 || !bytes.Equal(got[i], want[i]) {
				t.Errorf("%s fragment %d differs from the oracle (%d vs %d bytes)", fam.name, i, len(got[i]), len(want[i]))
			}
		}
		if n := testing.AllocsPerRun(10, func() { Fragment(pkt, 1500, 9, scratch, func([]byte) {}) }); n != 0 {
			t.Errorf("%s: %.0f allocations per datagram; want 0", fam.name, n)
		}
	}
	df := packettest.IP(srv4, cli4, ProtoUDP, packettest.UDPHdr(1, 2, make([]byte, 3000)))
	if Fragment(df, 1500, 1, make([]byte, 1500), func([]byte) { t.Error("emitted a fragment of a DF packet") }) {
		t.Error("a DF packet was fragmented")
	}
}
