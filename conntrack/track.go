package conntrack

const (
	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58

	icmpEchoRequest   = 8
	icmpEchoReply     = 0
	icmpv6EchoRequest = 128
	icmpv6EchoReply   = 129
)

func isICMP(proto uint8) bool { return proto == protoICMP || proto == protoICMPv6 }

// echoType is the ICMP type a packet of an echo flow carries in dir.
func echoType(proto uint8, dir Dir) uint8 {
	if proto == protoICMPv6 {
		if dir == DirOriginal {
			return icmpv6EchoRequest
		}
		return icmpv6EchoReply
	}
	if dir == DirOriginal {
		return icmpEchoRequest
	}
	return icmpEchoReply
}

// icmpIsError reports whether p is an ICMP error that quotes a packet:
// v4 unreachable, source quench, redirect, time exceeded, parameter
// problem; v6 unreachable, packet too big, time exceeded, parameter problem.
func icmpIsError(p *Packet) bool {
	switch p.Key.Proto {
	case protoICMP:
		switch p.ICMPType {
		case 3, 4, 5, 11, 12:
			return true
		}
	case protoICMPv6:
		return p.ICMPType >= 1 && p.ICMPType <= 4
	}
	return false
}

// canOpen reports whether a packet without an entry may start a flow.
func canOpen(p *Packet) bool {
	switch p.Key.Proto {
	case protoTCP:
		return tcpCanOpen(p.TCPFlags)
	case protoUDP:
		return true
	case protoICMP, protoICMPv6:
		// DstPort must be 0 (Key's convention) so that a flow's two keys
		// are each other's reply key, which the index relies on.
		return p.ICMPType == echoType(p.Key.Proto, DirOriginal) && p.Key.DstPort == 0
	}
	return false
}

// Track classifies p against the table and, when it belongs to a flow,
// advances the flow's state machine, counters and timer. It never creates
// an entry (Commit does, after policy allowed the first packet) and does
// not allocate.
func (t *Table) Track(p *Packet) Result {
	now := t.now()
	s := t.shardOf(&p.Key)
	s.mu.Lock()
	if slot, dir, ok := s.lookup(t, &p.Key, now); ok {
		r := s.update(t, slot, dir, p, now)
		s.mu.Unlock()
		return r
	}
	s.mu.Unlock()
	if canOpen(p) {
		s.ctr[cNew].Add(1)
		return Result{State: StateNew}
	}
	s.ctr[cInvalid].Add(1)
	return Result{State: StateInvalid}
}

// update applies p, travelling in dir, to the live entry at slot. Called
// with s.mu held.
func (s *shard) update(t *Table, slot uint32, dir Dir, p *Packet, now int64) Result {
	e := &s.entries[slot]
	r := Result{Found: true, Dir: dir, State: StateEstablished, Verdict: e.verdict}
	seenReply := e.flags&eSeenReply != 0
	switch e.key.Proto {
	case protoTCP:
		next, step := tcpTrack(dir, p.TCPFlags, e.tcp, seenReply)
		switch step {
		case tcpStepInvalid:
			s.ctr[cFound].Add(1)
			s.ctr[cInvalid].Add(1)
			r.State = StateInvalid
			return r
		case tcpStepReopen:
			// The entry stays until Commit replaces it, so a SYN the
			// policy refuses leaves the old state untouched.
			s.ctr[cNew].Add(1)
			return Result{State: StateNew}
		case tcpStepKill:
			s.ctr[cFound].Add(1)
			s.remove(t, slot)
			s.ctr[cRemoved].Add(1)
			return r
		case tcpStepUpdate:
			old := e.tcp
			e.tcp = next
			e.deadline = now + t.tcpTimeout[next]
			if seenReply && next == TCPEstablished && (old == TCPSynRecv || old == TCPEstablished) {
				s.setAssured(slot)
			}
		}
		// tcpStepIgnore and tcpStepKeep: counters only.
	case protoUDP:
		timeout := t.udpTimeout
		if seenReply && now-e.created > udpStreamAfter {
			timeout = t.udpStreamTimeout
			s.setAssured(slot)
		}
		e.deadline = now + timeout
	case protoICMP, protoICMPv6:
		// The key carries no type, so check it here: requests go one way,
		// replies the other (a flow to oneself only has one direction).
		if p.ICMPType != echoType(e.key.Proto, dir) &&
			!(e.key == replyKey(&e.key) && p.ICMPType == echoType(e.key.Proto, DirReply)) {
			s.ctr[cFound].Add(1)
			s.ctr[cInvalid].Add(1)
			r.State = StateInvalid
			return r
		}
		e.deadline = now + t.icmpTimeout
	}
	if dir == DirReply {
		e.flags |= eSeenReply
	}
	e.packets[dir]++
	e.bytes[dir] += uint64(max(p.Len, 0))
	s.ctr[cFound].Add(1)
	return r
}

// TrackICMPError classifies an ICMP error p whose quoted packet has key
// inner, exactly as quoted (the gateway parses it). Following Linux
// (reference §1.6), the error is RELATED when inner is a packet of a
// tracked flow in either direction and p goes back to the endpoint that
// sent the quoted packet (outer destination == inner.Src); otherwise a
// forged error could reach any host that shares a flow. Errors never create
// or change entries. Result.Dir is the direction the error travels.
//
// TODO(window): pf also checks a quoted TCP sequence number against the
// flow's window (RFC 5927 blind reset); add it with window tracking.
func (t *Table) TrackICMPError(p *Packet, inner Key) Result {
	now := t.now()
	s := t.shardOf(&inner)
	if !icmpIsError(p) || p.Key.Family != inner.Family || p.Key.Dst != inner.Src {
		s.ctr[cInvalid].Add(1)
		return Result{State: StateInvalid}
	}
	s.mu.Lock()
	slot, dir, ok := s.lookup(t, &inner, now)
	if !ok {
		s.mu.Unlock()
		s.ctr[cInvalid].Add(1)
		return Result{State: StateInvalid}
	}
	v := s.entries[slot].verdict
	s.mu.Unlock()
	s.ctr[cRelated].Add(1)
	return Result{Found: true, Dir: 1 - dir, State: StateRelated, Verdict: v}
}
