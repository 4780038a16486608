package conntrack

import "time"

// FlowInfo describes one flow for listings.
type FlowInfo struct {
	Orig, Reply Key
	Proto       uint8
	TCPState    string        // Linux state name; "" for non-TCP flows
	Timeout     time.Duration // time left before the flow expires
	Packets     [2]uint64     // indexed by Dir
	Bytes       [2]uint64
	Assured     bool
	SeenReply   bool
	Verdict     Verdict
}

// Range calls fn for each live flow until fn returns false. Each shard is
// copied under its lock and fn runs unlocked, so fn may call the table; the
// listing is consistent per shard, not across shards.
func (t *Table) Range(fn func(FlowInfo) bool) {
	var buf []FlowInfo
	for i := range t.shards {
		s := &t.shards[i]
		buf = buf[:0]
		now := t.now()
		s.mu.Lock()
		for j := uint32(1); j <= s.nslots; j++ {
			e := s.at(j)
			if e.flags&eInUse == 0 || now >= e.deadline {
				continue
			}
			fi := FlowInfo{
				Orig:      e.key,
				Reply:     replyKey(&e.key),
				Proto:     e.key.Proto,
				Timeout:   time.Duration(e.deadline - now),
				Packets:   e.packets,
				Bytes:     e.bytes,
				Assured:   e.flags&eAssured != 0,
				SeenReply: e.flags&eSeenReply != 0,
				Verdict:   e.verdict,
			}
			if e.key.Proto == protoTCP {
				fi.TCPState = e.tcp.String()
			}
			buf = append(buf, fi)
		}
		s.mu.Unlock()
		for _, fi := range buf {
			if !fn(fi) {
				return
			}
		}
	}
}
