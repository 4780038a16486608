package conntrack

import "net/netip"

// SourceCount is the number of tracked flows opened from addr, counted the
// way max_flows_per_source counts them (IPv6 sources per /64). Policy's
// max_conns condition reads it for each new flow, so it takes one shard
// lock and never allocates.
func (t *Table) SourceCount(addr netip.Addr) int {
	addr = addr.Unmap()
	var k Key
	if addr.Is4() {
		a := addr.As4()
		copy(k.Src[:], a[:])
		k.Family = 4
	} else {
		k.Src = addr.As16()
		k.Family = 6
	}
	src := sourceOf(&k)
	ss := t.srcShardOf(&src)
	ss.mu.Lock()
	n := ss.n[src].flows
	ss.mu.Unlock()
	return int(n)
}
