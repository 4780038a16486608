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
	// Window is what the window tracker holds for each direction's
	// sender (indexed by Dir); TCP flows only.
	Window [2]TCPWindow
}

// TCPWindow is the window tracker's view of one sender (van Rooij's
// td_end, td_maxend, td_maxwin and the window scale): its data must end at
// or before MaxEnd and the receiver's acknowledgements at or before End.
type TCPWindow struct {
	End     uint32 // highest sequence number sent, plus one
	MaxEnd  uint32 // highest sequence number the peer's window allows, plus one
	MaxWin  uint32 // largest window the sender advertised, scaled
	WScale  uint8  // shift applied to the sender's advertised windows; 0 when scaling is not in use
	Liberal bool   // windows are not checked for this sender (e.g. a picked-up flow)
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
			buf = append(buf, flowInfo(e, now))
		}
		s.mu.Unlock()
		for _, fi := range buf {
			if !fn(fi) {
				return
			}
		}
	}
}

// Lookup returns the live flow k belongs to (either direction).
func (t *Table) Lookup(k Key) (FlowInfo, bool) {
	now := t.now()
	h := t.hash(&k)
	s := t.shardFor(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	slot, _, ok := s.find(&k, h)
	if !ok || now >= s.at(slot).deadline {
		return FlowInfo{}, false
	}
	return flowInfo(s.at(slot), now), true
}

// flowInfo describes e at now. Called with e's shard lock held.
func flowInfo(e *entry, now int64) FlowInfo {
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
		for d, sd := range &e.conn.side {
			fi.Window[d] = TCPWindow{End: sd.end, MaxEnd: sd.maxend, MaxWin: sd.maxwin,
				WScale: sd.scale, Liberal: sd.flags&sideLiberal != 0}
		}
	}
	return fi
}
