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

// icmpTypeIsError reports whether typ is an ICMP error that quotes a
// packet: v4 unreachable, source quench, redirect, time exceeded,
// parameter problem; v6 unreachable, packet too big, time exceeded,
// parameter problem.
func icmpTypeIsError(proto, typ uint8) bool {
	switch proto {
	case protoICMP:
		switch typ {
		case 3, 4, 5, 11, 12:
			return true
		}
	case protoICMPv6:
		return typ >= 1 && typ <= 4
	}
	return false
}

func icmpIsError(p *Packet) bool { return icmpTypeIsError(p.Key.Proto, p.ICMPType) }

// canOpen reports whether a packet without an entry may start a flow.
func (t *Table) canOpen(p *Packet) bool {
	switch p.Key.Proto {
	case protoTCP:
		return tcpCanOpen(p.TCPFlags, t.loose)
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
//
// A packet that passes without changing state (a retransmission of
// acknowledged data, an ignored SYN, an RST in window but not exact) is
// reported StateEstablished; one that breaks the connection's state or
// windows is StateInvalid and changes nothing.
func (t *Table) Track(p *Packet) Result {
	now := t.now()
	h := t.hash(&p.Key)
	s := t.shardFor(h)
	s.mu.Lock()
	if slot, dir, ok := s.lookup(t, &p.Key, h, now); ok {
		r := s.update(t, slot, dir, p, now)
		s.mu.Unlock()
		return r
	}
	r := Result{State: StateInvalid}
	if t.canOpen(p) {
		r.State = StateNew
		s.ctr[cNew]++
	} else {
		s.ctr[cInvalid]++
	}
	s.mu.Unlock()
	return r
}

// update applies p, travelling in dir, to the live entry at slot. Called
// with s.mu held.
func (s *shard) update(t *Table, slot uint32, dir Dir, p *Packet, now int64) Result {
	e := s.at(slot)
	r := Result{Found: true, Dir: dir, State: StateEstablished, Verdict: e.verdict}
	accepted := true
	switch e.key.Proto {
	case protoTCP:
		switch s.tcpPacket(t, slot, e, dir, p, now) {
		case tcpInvalid:
			s.ctr[cFound]++
			s.ctr[cInvalid]++
			r.State = StateInvalid
			return r
		case tcpReopen:
			s.ctr[cNew]++
			return Result{State: StateNew}
		case tcpKill:
			s.ctr[cFound]++
			s.remove(t, slot, reasonClosed)
			s.ctr[cRemoved]++
			return r
		case tcpIgnore:
			s.ctr[cIgnore]++
			accepted = false
		}
	case protoUDP:
		timeout := t.udpTimeout
		if e.flags&eSeenReply != 0 && now-e.created > udpStreamAfter {
			timeout = t.udpStreamTimout
			s.setAssured(t, slot, e, now)
		}
		s.setDeadline(slot, e, now+timeout)
	case protoICMP, protoICMPv6:
		// The key carries no type, so check it here: requests go one way,
		// replies the other (a flow to oneself only has one direction).
		if p.ICMPType != echoType(e.key.Proto, dir) &&
			!(isReplyOf(&e.key, &e.key) && p.ICMPType == echoType(e.key.Proto, DirReply)) {
			s.ctr[cFound]++
			s.ctr[cInvalid]++
			r.State = StateInvalid
			return r
		}
		s.setDeadline(slot, e, now+t.icmpTimeout)
	}
	if accepted && dir == DirReply && e.flags&eSeenReply == 0 {
		s.seeReply(t, slot, e, now)
	}
	e.packets[dir]++
	e.bytes[dir] += uint64(max(p.Len, 0))
	s.ctr[cFound]++
	return r
}

// TrackICMPError classifies an ICMP error p whose quoted packet has key
// inner, exactly as quoted. It is TrackICMPErrorQuote without the quoted
// TCP sequence number, so TCP quotes skip the window check; the stack
// should call TrackICMPErrorQuote.
func (t *Table) TrackICMPError(p *Packet, inner Key) Result {
	return t.trackICMPError(p, &Quote{Key: inner, L4Len: 8}, false)
}

// TrackICMPErrorQuote classifies an ICMP error p about the quoted packet
// q. Following Linux (reference §1.6), the error is RELATED when q is a
// packet of a tracked flow in either direction and p goes back to the
// endpoint that sent it (outer destination == q.Key.Src); otherwise a
// forged error could reach any host that shares a flow. Like pf, a quoted
// TCP segment must also lie in its sender's window (RFC 5927 blind
// resets). A quote shorter than 8 transport bytes, or quoting an ICMP
// message other than an echo, is INVALID. Errors never create or change
// entries. Result.Dir is the direction the error travels.
func (t *Table) TrackICMPErrorQuote(p *Packet, q *Quote) Result {
	return t.trackICMPError(p, q, true)
}

// trackICMPError is both variants; full is false for TrackICMPError,
// whose caller quoted neither the sequence number nor the ICMP type.
func (t *Table) trackICMPError(p *Packet, q *Quote, full bool) Result {
	now := t.now()
	inner := &q.Key
	h := t.hash(inner)
	s := t.shardFor(h)
	bad := !icmpIsError(p) || p.Key.Family != inner.Family || p.Key.Dst != inner.Src || q.L4Len < 8 ||
		(full && isICMP(inner.Proto) && q.ICMPType != echoType(inner.Proto, DirOriginal) && q.ICMPType != echoType(inner.Proto, DirReply))
	s.mu.Lock()
	var slot uint32
	var dir Dir
	ok := false
	if !bad {
		slot, dir, ok = s.lookup(t, inner, h, now)
	}
	if ok {
		e := s.at(slot)
		if full && isICMP(inner.Proto) && q.ICMPType != echoType(inner.Proto, dir) {
			ok = false // a request quoted as a reply or the other way round
		} else if full && inner.Proto == protoTCP && !e.conn.quoteInWindow(dir, q.Seq) {
			ok = false
		}
	}
	if !ok {
		s.ctr[cInvalid]++
		s.mu.Unlock()
		return Result{State: StateInvalid}
	}
	v := s.at(slot).verdict
	s.ctr[cRelated]++
	s.mu.Unlock()
	return Result{Found: true, Dir: 1 - dir, State: StateRelated, Verdict: v}
}
