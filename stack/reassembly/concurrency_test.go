package reassembly

import (
	"sync"
	"testing"
)

// TestConcurrent has several readers reassemble their own datagrams at
// once (run it with -race). With room for all, every datagram completes
// intact; on a budget too small for all, evictions cross shards while
// their owners work in them, and the counts still add up.
func TestConcurrent(t *testing.T) {
	const readers, perReader = 4, 200
	for _, tc := range []struct {
		name   string
		budget int
	}{{"room for all", defaultMemory}, {"tight budget", 8 << 10}} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := newTest(tc.budget)
			var wg sync.WaitGroup
			errs := make(chan string, readers)
			for g := range readers {
				wg.Go(func() {
					// Eight datagrams in flight at a time, more than a tight budget holds,
					// so it has to evict.
					const batch = 8
					out := make([]byte, MaxDatagram)
					for i := 0; i < perReader; i += batch {
						var os [batch]orig
						var res [batch]Result
						var n [batch]int
						for j := range batch {
							base := udp4(3000)
							if j%2 == 1 {
								base = udp6(3000)
							}
							os[j] = withID(base, uint32(g*perReader+i+j)) // 16 bits for IPv4
						}
						for _, k := range []int{2, 0, 1} {
							for j := range batch {
								n[j], res[j], _ = r.Add(os[j].split(1480, 2960)[k], out)
								if res[j] == Complete && string(out[:n[j]]) != string(os[j].pkt) {
									errs <- "a reassembled datagram differs from its original"
									return
								}
							}
						}
						for j := range batch {
							if res[j] != Complete && tc.budget == defaultMemory {
								errs <- "a datagram did not complete with room for all: " + res[j].String()
								return
							}
						}
						if r.Stats().MemoryInUse > int64(tc.budget) {
							errs <- "memory over the budget"
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for e := range errs {
				t.Error(e)
			}
			st := r.Stats()
			checkConserved(t, st)
			if tc.budget == defaultMemory {
				if st.Reassembled != readers*perReader {
					t.Errorf("reassembled: got %d; want %d", st.Reassembled, readers*perReader)
				}
				checkEmpty(t, r)
			} else if st.DatagramsDropped[ReasonMemory] == 0 {
				t.Errorf("tight budget: nothing evicted")
			}
		})
	}
}
