package conntrack

// TCP window tracking after Guido van Rooij, "Real Stateful TCP Packet
// Filtering in IP Filter", with the refinements Linux's tcp_in_window
// carries (reference §1.4). Per direction the tracker keeps the highest
// sequence end sent (end), the highest end the peer allows (maxend =
// ack + window), the largest window the side advertised (maxwin) and the
// highest ack it sent (maxack). A segment is in window when
//
//	I.   seq     <= sender.maxend
//	II.  seq+len >= sender.end - receiver.maxwin
//	III. ack     <= receiver.end
//	IV.  ack     >= receiver.end - max(sender.maxwin, 66000)
//
// and the outcome of a failed check follows the reference table: some
// failures are INVALID, others pass without touching state.

// tcpSide flags.
const (
	sideWScale    uint8 = 1 << iota // the side's SYN carried a window scale option
	sideSACKPerm                    // the side's SYN allowed SACK
	sideLiberal                     // no window checks for this sender
	sideUnacked                     // the side sent data not yet acknowledged
	sideMaxAckSet                   // maxack holds a value
	sideCloseInit                   // the side sent the connection's first FIN
)

// lastChallenge in tcpConn.lastFlags marks a SYN ignored in LAST_ACK: the
// RFC 5961 challenge ACK that answers it must not count as the last ACK
// (Linux IP_CT_EXP_CHALLENGE_ACK).
const lastChallenge uint8 = 0x80

const (
	maxAckWinConst = 66000 // Linux MAXACKWINCONST
	maxRetrans     = 3     // nf_conntrack_tcp_max_retrans
	maxWScale      = 14    // RFC 7323 §2.3
)

type tcpSide struct {
	end, maxend, maxwin, maxack uint32
	scale                       uint8
	flags                       uint8
}

// tcpConn is the per-connection TCP tracking state, kept in the entry.
type tcpConn struct {
	side [2]tcpSide // indexed by Dir

	// The last packet (Linux's last_*): retransmission detection, the
	// ignored-SYN resynchronisation and RST checks use it.
	lastSeq, lastAck, lastEnd uint32
	lastWin                   uint16
	lastDir                   Dir
	lastIndex                 uint8
	lastWScale                uint8
	lastFlags                 uint8
	retrans                   uint8
}

func before(a, b uint32) bool { return int32(a-b) < 0 }
func after(a, b uint32) bool  { return int32(b-a) < 0 }

// segEnd is the sequence number after p: SYN and FIN count one each.
func segEnd(p *Packet) uint32 {
	end := p.Seq + uint32(p.PayloadLen)
	if p.TCPFlags&flagSYN != 0 {
		end++
	}
	if p.TCPFlags&flagFIN != 0 {
		end++
	}
	return end
}

// synOptions reads a SYN's window scale and SACK-permitted options into
// side flags.
func synOptions(p *Packet) (scale, flags uint8) {
	if p.WScale >= 0 {
		scale = uint8(min(p.WScale, maxWScale))
		flags |= sideWScale
	}
	if p.SACKPerm {
		flags |= sideSACKPerm
	}
	return scale, flags
}

// initSide starts tracking dir from its SYN (or SYN/ACK) p.
func (c *tcpConn) initSide(dir Dir, p *Packet) {
	end := segEnd(p)
	scale, flags := synOptions(p)
	c.side[dir] = tcpSide{
		end: end, maxend: end, maxwin: max(uint32(p.Window), 1),
		scale: scale, flags: flags | c.side[dir].flags&sideLiberal,
	}
}

// initFromSYN is the state Commit gives a connection opened by SYN p.
func (c *tcpConn) initFromSYN(p *Packet) {
	*c = tcpConn{}
	c.initSide(DirOriginal, p)
	if !p.TCPOpts {
		// Without the options the windows cannot be scaled right.
		c.side[0].flags |= sideLiberal
		c.side[1].flags |= sideLiberal
	}
	c.lastIndex, c.lastDir, c.lastWin = tcpSynSet, DirOriginal, p.Window
}

// initPickup is the state Commit gives a connection picked up mid-stream
// from ACK p (loose mode): Linux trusts the first packet's sequence
// numbers and turns window checks off in both directions.
func (c *tcpConn) initPickup(p *Packet) {
	*c = tcpConn{}
	end := segEnd(p)
	win := max(uint32(p.Window), 1)
	c.side[0] = tcpSide{end: end, maxend: end + win, maxwin: win, flags: sideSACKPerm | sideLiberal}
	c.side[1].flags = sideSACKPerm | sideLiberal
	c.lastIndex, c.lastDir, c.lastWin = tcpAckSet, DirOriginal, p.Window
}

// windowResult is tcpInWindow's outcome.
type windowResult uint8

const (
	winAccept  windowResult = iota // in window; state updated
	winIgnore                      // passes, state untouched (PASS-NOSTATE)
	winInvalid                     // INVALID
)

// inWindow checks p, travelling in dir on a connection in state, against
// the windows and on success updates them.
func (c *tcpConn) inWindow(state TCPState, dir Dir, idx int, p *Packet) windowResult {
	snd, rcv := &c.side[dir], &c.side[1-dir]
	flags := p.TCPFlags
	seq, ack, end := p.Seq, p.Ack, segEnd(p)
	win := uint32(p.Window)
	sack := ack
	if rcv.flags&sideSACKPerm != 0 && p.SACKEdge != 0 && after(p.SACKEdge, sack) {
		sack = p.SACKEdge
	}

	if snd.maxwin == 0 {
		// First packet from this side.
		if flags&flagSYN != 0 {
			c.initSide(dir, p)
			if !p.TCPOpts {
				snd.flags |= sideLiberal
				rcv.flags |= sideLiberal
			}
			if snd.flags&rcv.flags&sideWScale == 0 {
				// Scaling is on only when both SYNs offer it.
				snd.scale, rcv.scale = 0, 0
			}
			if flags&flagACK == 0 {
				return winAccept // simultaneous open: nothing to acknowledge yet
			}
		} else {
			// A side never seen opening (loose pickup): take it as it is.
			snd.end = end
			snd.maxwin = max(win<<snd.scale, 1)
			snd.maxend = end + snd.maxwin
			if rcv.maxwin == 0 {
				rcv.end, rcv.maxend = sack, sack
			}
		}
	} else if ((state == TCPSynSent && dir == DirOriginal && idx == tcpSynSet) ||
		(state == TCPSynRecv && dir == DirReply && idx == tcpSynAckSet)) && after(end, snd.end) {
		// The SYN (or SYN/ACK) is sent again with a new initial sequence
		// number; start over from it (RFC 9293 allows a reinitialised
		// TCP to do so).
		c.initSide(dir, p)
		if state == TCPSynRecv && snd.flags&rcv.flags&sideWScale == 0 {
			snd.scale, rcv.scale = 0, 0
		}
	}

	if flags&flagACK == 0 || (flags&flagRST != 0 && ack == 0) {
		// No ACK (or a stack that sets ACK with a zero ack on RST):
		// nothing is acknowledged, so checks III and IV hold trivially.
		ack, sack = rcv.end, rcv.end
	}
	if seq == end && (flags&flagRST == 0 || (seq == 0 && state == TCPSynSent)) {
		// No data: only the ack matters. RSTs are judged by their
		// sequence number (except the seq 0 answer to a SYN).
		seq, end = snd.end, snd.end
	}

	maxAckWin := max(snd.maxwin, maxAckWinConst)
	seqOK := !after(seq, snd.maxend)                                 // I
	inRecvWin := rcv.maxwin == 0 || !before(end, snd.end-rcv.maxwin) // II
	ackHi := !after(sack, rcv.end)                                   // III
	ackLo := !before(sack, rcv.end-maxAckWin)                        // IV

	ok := seqOK && inRecvWin && ackHi && ackLo
	if !ok && snd.flags&sideLiberal != 0 && flags&flagRST == 0 {
		// Liberal: anything but an out-of-window RST passes, and the
		// windows keep moving forward.
		ok = true
	}
	if !ok {
		switch {
		case !seqOK:
			if inRecvWin && ackHi && ackLo && rcv.maxwin != 0 && end-snd.maxend <= rcv.maxwin {
				// A few bytes beyond the window: senders do this; the
				// receiver drops them.
				return winIgnore
			}
			return winInvalid // data beyond the receiver's window
		case !inRecvWin:
			return winIgnore // retransmission of data already acknowledged
		case !ackHi:
			return winInvalid // acknowledges data never sent
		default:
			return winIgnore // an ACK too old to matter
		}
	}

	// Update the sender.
	if flags&flagSYN == 0 {
		win <<= snd.scale
	}
	if swin := win + (sack - ack); snd.maxwin < swin {
		snd.maxwin = swin
	}
	if after(end, snd.end) {
		snd.end = end
		snd.flags |= sideUnacked
	}
	if flags&flagACK != 0 {
		if snd.flags&sideMaxAckSet == 0 {
			snd.maxack = ack
			snd.flags |= sideMaxAckSet
		} else if after(ack, snd.maxack) {
			snd.maxack = ack
		}
	}
	// Update the receiver.
	if rcv.maxwin != 0 && after(end, snd.maxend) {
		rcv.maxwin += end - snd.maxend
	}
	if after(sack+win, rcv.maxend-1) {
		rcv.maxend = sack + win
		if win == 0 {
			rcv.maxend++
		}
	}
	if ack == rcv.end {
		rcv.flags &^= sideUnacked
	}
	// Retransmissions of the same segment (Linux counts ACK-class ones).
	if idx == tcpAckSet {
		if c.lastDir == dir && c.lastSeq == seq && c.lastAck == ack && c.lastEnd == end && c.lastWin == p.Window {
			if c.retrans < 255 {
				c.retrans++
			}
		} else {
			c.lastDir, c.lastSeq, c.lastAck, c.lastEnd, c.lastWin = dir, seq, ack, end, p.Window
			c.retrans = 0
		}
	}
	return winAccept
}

// quoteInWindow reports whether seq, quoted by an ICMP error about a
// packet that dir sent, could belong to the connection: within
// [end - peer's maxwin, maxend] of the sender (pf's check against blind
// resets by ICMP, RFC 5927). Liberal connections pass.
func (c *tcpConn) quoteInWindow(dir Dir, seq uint32) bool {
	snd, rcv := &c.side[dir], &c.side[1-dir]
	if (snd.flags|rcv.flags)&sideLiberal != 0 {
		return true
	}
	if snd.maxwin == 0 {
		return false // this side never sent anything
	}
	lo := snd.end - max(rcv.maxwin, 1)
	return !before(seq, lo) && !after(seq, snd.maxend)
}
