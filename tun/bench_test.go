package tun

import (
	"net/netip"
	"testing"
)

// BenchmarkTUNEcho writes an ICMP echo request into a real TUN and reads
// the kernel's reply: one packet each way through the device per op.
func BenchmarkTUNEcho(b *testing.B) {
	enterNetns(b)
	ifc := openTest(b, Config{Name: "tgbench0", MTU: 1500, Queues: 1, Addresses: []string{"198.18.0.1/24"}})
	q := ifc.Queues()[0]
	out := [][]byte{echoRequest(netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.1"), 0x4242)}
	bufs, sizes := [][]byte{make([]byte, 1500)}, []int{0}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := q.Write(out, 0); err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := q.Read(bufs, sizes, 0); err != nil {
				b.Fatal(err)
			}
			if p := bufs[0][:sizes[0]]; len(p) >= 28 && p[0] == 0x45 && p[20] == 0 {
				break // the echo reply; skip any IPv6 chatter
			}
		}
	}
}
