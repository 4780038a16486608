package conntrack

// TCPState is a tracked TCP connection's state, named and numbered as in
// Linux nf_conntrack_proto_tcp.c so listings read the same.
type TCPState uint8

const (
	TCPNone TCPState = iota
	TCPSynSent
	TCPSynRecv
	TCPEstablished
	TCPFinWait
	TCPCloseWait
	TCPLastAck
	TCPTimeWait
	TCPClose
	TCPSynSent2
	numTCPStates

	// Pseudo-states the transition table yields, never stored.
	sIV = numTCPStates     // the packet breaks the state machine
	sIG = numTCPStates + 1 // pass without changing state
)

var tcpStateNames = [numTCPStates]string{
	"NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT",
	"CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2",
}

func (s TCPState) String() string {
	if s < numTCPStates {
		return tcpStateNames[s]
	}
	return "INVALID"
}

// IsTCPStateName reports whether name is the name (as listed) of a state
// a tracked connection can be in.
func IsTCPStateName(name string) bool {
	for _, n := range tcpStateNames[TCPSynSent:] {
		if n == name {
			return true
		}
	}
	return false
}

// TCP header flag bits, as in the header's 13th byte.
const (
	flagFIN = 0x01
	flagSYN = 0x02
	flagRST = 0x04
	flagPSH = 0x08
	flagACK = 0x10
	flagURG = 0x20
)

// tcpFlagMask drops PSH, ECE and CWR, which Linux ignores when it decides
// whether a flag combination is valid.
const tcpFlagMask = flagFIN | flagSYN | flagRST | flagACK | flagURG

// tcpValidFlags is Linux's tcp_valid_flags[]: every combination not listed
// (NULL, FIN alone, XMAS, SYN+FIN, SYN+RST, URG alone, ...) is invalid.
var tcpValidFlags = func() (v [tcpFlagMask + 1]bool) {
	for _, f := range []uint8{
		flagSYN, flagSYN | flagURG, flagSYN | flagACK,
		flagRST, flagRST | flagACK,
		flagFIN | flagACK, flagFIN | flagACK | flagURG,
		flagACK, flagACK | flagURG,
	} {
		v[f] = true
	}
	return v
}()

func tcpFlagsValid(flags uint8) bool { return tcpValidFlags[flags&tcpFlagMask] }

// Packet classes, the rows of the transition table (get_conntrack_index).
const (
	tcpSynSet = iota
	tcpSynAckSet
	tcpFinSet
	tcpAckSet
	tcpRstSet
	tcpNoneSet
	numTCPIndex
)

// tcpIndex classifies flags with Linux's priority: RST > SYN(+ACK) > FIN >
// ACK > none.
func tcpIndex(flags uint8) int {
	switch {
	case flags&flagRST != 0:
		return tcpRstSet
	case flags&flagSYN != 0:
		if flags&flagACK != 0 {
			return tcpSynAckSet
		}
		return tcpSynSet
	case flags&flagFIN != 0:
		return tcpFinSet
	case flags&flagACK != 0:
		return tcpAckSet
	}
	return tcpNoneSet
}

// tcpTransitions is tcp_conntracks[dir][index][old state] from Linux,
// transcribed from the table in reference/conntrack.md §1.4.
var tcpTransitions = func() (t [2][numTCPIndex][numTCPStates]TCPState) {
	const (
		sNO = TCPNone
		sSS = TCPSynSent
		sSR = TCPSynRecv
		sES = TCPEstablished
		sFW = TCPFinWait
		sCW = TCPCloseWait
		sLA = TCPLastAck
		sTW = TCPTimeWait
		sCL = TCPClose
		sS2 = TCPSynSent2
	)
	t[DirOriginal] = [numTCPIndex][numTCPStates]TCPState{
		//              sNO  sSS  sSR  sES  sFW  sCW  sLA  sTW  sCL  sS2
		tcpSynSet:    {sSS, sSS, sIG, sIG, sIG, sIG, sIG, sSS, sSS, sS2},
		tcpSynAckSet: {sIV, sIV, sSR, sIV, sIV, sIV, sIV, sIV, sIV, sSR},
		tcpFinSet:    {sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV},
		tcpAckSet:    {sES, sIV, sES, sES, sCW, sCW, sTW, sTW, sCL, sIV},
		tcpRstSet:    {sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL},
		tcpNoneSet:   {sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV},
	}
	t[DirReply] = [numTCPIndex][numTCPStates]TCPState{
		//              sNO  sSS  sSR  sES  sFW  sCW  sLA  sTW  sCL  sS2
		tcpSynSet:    {sIV, sS2, sIV, sIV, sIV, sIV, sIV, sSS, sIV, sS2},
		tcpSynAckSet: {sIV, sSR, sIG, sIG, sIG, sIG, sIG, sIG, sIG, sSR},
		tcpFinSet:    {sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV},
		tcpAckSet:    {sIV, sIG, sSR, sES, sCW, sCW, sTW, sTW, sCL, sIG},
		tcpRstSet:    {sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL},
		tcpNoneSet:   {sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV},
	}
	return t
}()

// tcpCanOpen reports whether a TCP packet with no entry may start a flow:
// a valid SYN without ACK, or with loose pickup an ACK (Linux's
// nf_conntrack_tcp_loose; a security gateway does not, reference §4.1).
func tcpCanOpen(flags uint8, loose bool) bool {
	if !tcpFlagsValid(flags) {
		return false
	}
	idx := tcpIndex(flags)
	return idx == tcpSynSet || (loose && idx == tcpAckSet)
}

// tcpResult is the outcome of one packet on a tracked TCP connection.
type tcpResult uint8

const (
	tcpAccept  tcpResult = iota // state, windows and timer updated
	tcpIgnore                   // passes; state and timer untouched (PASS-NOSTATE)
	tcpInvalid                  // INVALID; nothing touched
	tcpReopen                   // SYN on a closed connection: Commit replaces the entry
	tcpKill                     // RST before any reply: entry removed, packet passes
)

// tcpPacket runs p, travelling in dir, through the connection at slot:
// flag sanity, the transition table, the special cases of Linux's
// nf_conntrack_tcp_packet (reference §1.4), window tracking and the
// timeout choice. Called with s.mu held.
func (s *shard) tcpPacket(t *Table, slot uint32, e *entry, dir Dir, p *Packet, now int64) tcpResult {
	flags := p.TCPFlags
	if !tcpFlagsValid(flags) {
		return tcpInvalid
	}
	c := &e.conn
	old := e.tcp
	idx := tcpIndex(flags)
	next := tcpTransitions[dir][idx][old]
	seenReply := e.flags&eSeenReply != 0
	skipWindow := false
	switch next {
	case sIV:
		return tcpInvalid
	case TCPSynSent:
		if old == TCPTimeWait || old == TCPClose {
			// RFC 1122 reopen. The entry stays until Commit replaces it,
			// so a SYN the policy refuses leaves the old state untouched.
			return tcpReopen
		}
	case sIG:
		if !c.resync(dir, idx, p) {
			c.recordIgnored(old, dir, idx, p)
			return tcpIgnore
		}
		// A SYN/ACK answering a SYN we ignored: the endpoints are in
		// sync and the tracker was not. Carry on from SYN_SENT.
		old, next = TCPSynSent, TCPSynRecv
	case TCPTimeWait:
		if old == TCPLastAck && idx == tcpAckSet && c.lastDir != dir &&
			c.lastIndex == tcpSynSet && c.lastFlags&lastChallenge != 0 {
			// The RFC 5961 challenge ACK answering a SYN in LAST_ACK,
			// not the ACK of the last FIN.
			c.lastFlags &^= lastChallenge
			return tcpIgnore
		}
	case TCPClose:
		if idx != tcpRstSet {
			break
		}
		if !seenReply && dir == DirReply {
			// RFC 9293 §3.10.7.3: in SYN-SENT an RST counts only when it
			// acknowledges the SYN; anything else is forged or stale.
			if flags&flagACK == 0 || p.Ack != c.side[DirOriginal].end {
				return tcpInvalid
			}
			skipWindow = true
			break
		}
		if peer := &c.side[1-dir]; peer.flags&sideMaxAckSet != 0 {
			if before(p.Seq, peer.maxack) {
				return tcpInvalid // before what the peer already acknowledged
			}
			established := old == TCPEstablished && e.flags&eAssured != 0
			exact := p.Seq == peer.maxack ||
				(c.lastIndex == tcpAckSet && c.lastDir == dir && p.Seq == c.lastEnd)
			if established && !exact {
				// In window but not exact: keep the state so the
				// endpoint's challenge ACK and an exact RST can follow.
				next = old
			}
		}
		if ((seenReply && c.lastIndex == tcpSynSet) || (e.flags&eAssured == 0 && c.lastIndex == tcpAckSet)) &&
			p.Ack == c.lastEnd && flags&flagACK != 0 {
			// An RST answering a SYN or ACK we let through: its sequence
			// number belongs to a connection we never saw.
			skipWindow = true
		}
	}
	if !skipWindow {
		switch c.inWindow(old, dir, idx, p) {
		case winInvalid:
			s.tcpHandleInvalid(t, slot, e, dir, now)
			return tcpInvalid
		case winIgnore:
			return tcpIgnore
		}
	}
	c.lastIndex, c.lastDir = uint8(idx), dir
	if old != next && next == TCPFinWait {
		c.side[dir].flags |= sideCloseInit
	}
	e.tcp = next
	if (next == TCPTimeWait || next == TCPClose) && e.flags&eSourceFree == 0 {
		e.flags |= eSourceFree
		src := sourceOf(&e.key)
		t.releaseSource(&src, false)
	}

	to := t.tcpTimeout[next]
	switch {
	case c.retrans >= maxRetrans && to > t.tcpRetransTO:
		to = t.tcpRetransTO
	case idx == tcpRstSet:
		to = t.tcpTimeout[TCPClose]
	case (c.side[0].flags|c.side[1].flags)&sideUnacked != 0 && to > t.tcpUnackTO:
		to = t.tcpUnackTO
	case c.lastWin == 0 && to > t.tcpRetransTO:
		to = t.tcpRetransTO
	}
	if !seenReply {
		if idx == tcpRstSet {
			return tcpKill
		}
		if c.side[0].flags&sideLiberal != 0 {
			to = min(to, t.tcpUnackTO)
		}
		// A SYN retransmit must not keep a half-open entry alive.
		if !(idx == tcpSynSet && dir == DirOriginal && old == TCPSynSent) {
			s.setDeadline(slot, e, now+to)
		}
	} else {
		if (old == TCPSynRecv || old == TCPEstablished) && next == TCPEstablished {
			s.setAssured(t, slot, e, now)
		}
		s.setDeadline(slot, e, now+to)
	}
	if old != next && t.ev.active() {
		t.ev.emit(t, EventUpdate, e, 0, now)
	}
	return tcpAccept
}

// resync handles a SYN/ACK that acknowledges the SYN we last ignored:
// the tracker takes the ignored SYN's values as the original side and
// forgets the other.
func (c *tcpConn) resync(dir Dir, idx int, p *Packet) bool {
	if idx != tcpSynAckSet || c.lastIndex != tcpSynSet || c.lastDir == dir || p.Ack != c.lastEnd {
		return false
	}
	ld := c.lastDir
	c.side[ld] = tcpSide{
		end: c.lastEnd, maxend: c.lastEnd, maxwin: max(uint32(c.lastWin), 1),
		scale: c.lastWScale, flags: c.lastFlags&(sideWScale|sideSACKPerm) | c.side[ld].flags&sideLiberal,
	}
	c.side[dir] = tcpSide{flags: c.side[dir].flags & sideLiberal}
	return true
}

// recordIgnored notes an ignored packet (Linux's sIG path) for resync and
// the challenge-ACK check.
func (c *tcpConn) recordIgnored(old TCPState, dir Dir, idx int, p *Packet) {
	c.lastIndex, c.lastDir = uint8(idx), dir
	c.lastSeq, c.lastAck, c.lastEnd, c.lastWin = p.Seq, p.Ack, segEnd(p), p.Window
	c.lastFlags, c.lastWScale = 0, 0
	if idx == tcpSynSet && dir == DirOriginal {
		c.lastWScale, c.lastFlags = synOptions(p)
	}
	if old == TCPLastAck {
		c.lastFlags |= lastChallenge
	}
}

// tcpHandleInvalid is Linux's nf_tcp_handle_invalid: an assured
// connection whose peer answers a FIN or RST with an out-of-window packet
// is most likely dead, so it need not linger for days.
func (s *shard) tcpHandleInvalid(t *Table, slot uint32, e *entry, dir Dir, now int64) {
	c := &e.conn
	if e.flags&eAssured == 0 || c.lastDir == dir || (c.lastIndex != tcpFinSet && c.lastIndex != tcpRstSet) {
		return
	}
	if e.deadline-now > t.tcpUnackTO {
		s.setDeadline(slot, e, now+t.tcpUnackTO)
	}
}
