package reassembly

import "testing"

// BenchmarkAdd2Fragments is the common case: a datagram just over the MTU
// in two fragments, the first held, the second completing it.
func BenchmarkAdd2Fragments(b *testing.B) {
	for _, o := range []orig{udp4(2000), udp6(2000)} {
		name := "v4"
		if o.is6() {
			name = "v6"
		}
		b.Run(name, func(b *testing.B) {
			r := New(Config{}, nil)
			out := make([]byte, MaxDatagram)
			fs := o.split(1232)
			b.ReportAllocs()
			b.SetBytes(int64(len(o.pkt)))
			for b.Loop() {
				r.Add(fs[0], out)
				if _, res, _ := r.Add(fs[1], out); res != Complete {
					b.Fatalf("got %v; want complete", res)
				}
			}
		})
	}
}

// BenchmarkIsFragment is the test every packet pays, on packets that are
// not fragments.
func BenchmarkIsFragment(b *testing.B) {
	for _, tc := range []struct {
		name string
		pkt  []byte
	}{{"v4", udp4(1000).pkt}, {"v6", udp6(1000).pkt}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if IsFragment(tc.pkt) {
					b.Fatal("a datagram taken for a fragment")
				}
			}
		})
	}
}
