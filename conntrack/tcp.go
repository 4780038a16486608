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
	tcpInvalid = numTCPStates     // sIV: the packet breaks the state machine
	tcpIgnore  = numTCPStates + 1 // sIG: pass without changing state
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
		sIV = tcpInvalid
		sIG = tcpIgnore
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
// a valid SYN without ACK. Linux would also pick up a mid-stream ACK
// (tcp_loose); a security gateway does not (reference §4.1).
func tcpCanOpen(flags uint8) bool {
	return tcpFlagsValid(flags) && tcpIndex(flags) == tcpSynSet
}

// tcpStep is the outcome of one packet on a tracked TCP connection.
type tcpStep uint8

const (
	tcpStepUpdate  tcpStep = iota // new state stored, timeout refreshed
	tcpStepIgnore                 // passes; state and timeout untouched (sIG)
	tcpStepInvalid                // INVALID; nothing touched
	tcpStepReopen                 // SYN on a closed connection: caller replaces the entry
	tcpStepKill                   // RST before any reply: entry removed, packet passes
	tcpStepKeep                   // SYN retransmit before a reply: counters only
)

// tcpTrack runs the transition table for a packet in direction dir on a
// connection in state old; seenReply is whether the reply direction has
// been seen before this packet.
//
// TODO(window): van Rooij window tracking (tcp_in_window: td_end, td_maxend,
// td_maxwin, scale per direction), RST sequence validation (RFC 5961 exact
// match, challenge-ACK in LAST_ACK), retransmission and unacked-data
// timeouts. They need per-direction sequence state in the entry and the
// Seq/Ack/Window/PayloadLen fields Packet already carries.
func tcpTrack(dir Dir, flags uint8, old TCPState, seenReply bool) (TCPState, tcpStep) {
	if !tcpFlagsValid(flags) {
		return old, tcpStepInvalid
	}
	idx := tcpIndex(flags)
	next := tcpTransitions[dir][idx][old]
	switch next {
	case tcpInvalid:
		return old, tcpStepInvalid
	case tcpIgnore:
		return old, tcpStepIgnore
	}
	if next == TCPSynSent && (old == TCPTimeWait || old == TCPClose) {
		return old, tcpStepReopen
	}
	if !seenReply {
		// An RST answering our unreplied SYN leaves nothing worth keeping,
		// and a SYN retransmit must not keep a half-open entry alive.
		if idx == tcpRstSet {
			return next, tcpStepKill
		}
		if idx == tcpSynSet && old == TCPSynSent && next == TCPSynSent {
			return old, tcpStepKeep
		}
	}
	return next, tcpStepUpdate
}
