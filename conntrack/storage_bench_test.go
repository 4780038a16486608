package conntrack

import (
	"testing"
	"unsafe"
)

const entrySize = unsafe.Sizeof(entry{})

// BenchmarkStorageChoice compares the per-packet update of an entry
// reached in place (index+arena: a map finds it, the update writes a few
// fields where it lies, as the shard tables do) with one stored by value in
// a Go map (read, modify, write the whole entry back): the reason the
// tracker keeps its own table (see Table). 64Ki flows, original-direction
// packets, no locking.
func BenchmarkStorageChoice(b *testing.B) {
	const n = 1 << 16
	keys := make([]Key, n)
	for i := range keys {
		keys[i] = benchKey(uint32(i))
	}
	b.Run("index+arena", func(b *testing.B) {
		index := make(map[Key]uint32, 2*n)
		arena := make([]entry, n)
		for i, k := range keys {
			index[k] = uint32(i) << 1
			index[replyKey(&k)] = uint32(i)<<1 | 1
			arena[i].key = k
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			v := index[keys[i&(n-1)]]
			e := &arena[v>>1]
			e.packets[v&1]++
			e.bytes[v&1] += 100
			e.deadline += 1
			i++
		}
	})
	b.Run("map-by-value", func(b *testing.B) {
		m := make(map[Key]entry, n)
		reply := make(map[Key]Key, n) // reply key -> original key
		for _, k := range keys {
			m[k] = entry{key: k}
			reply[replyKey(&k)] = k
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			k := keys[i&(n-1)]
			e, ok := m[k]
			if ok {
				e.packets[0]++
				e.bytes[0] += 100
				e.deadline += 1
				m[k] = e
			}
			i++
		}
	})
}
