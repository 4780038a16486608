// Package conntrack is tungate's stateful connection tracker: the flow
// table, per-protocol state machines, timeouts, limits and expiry, and the
// listing the control socket serves. It knows nothing of policy or of the
// gVisor stack: callers hand it parsed header fields and an opaque verdict.
package conntrack

// Key identifies a flow direction. It is pointer-free and comparable so a
// table of millions of entries costs the garbage collector nothing to scan.
// IPv4 addresses occupy the first 4 bytes of Src and Dst, the rest zero.
// For ICMP echo, SrcPort holds the echo identifier and DstPort is 0.
type Key struct {
	Src, Dst         [16]byte
	SrcPort, DstPort uint16
	Proto            uint8 // IANA protocol number: 6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6
	Family           uint8 // 4 or 6
}

// Packet is what the filter hook parsed from one packet, in the direction
// it travels. It holds no pointers and is passed by pointer only to avoid
// copying.
type Packet struct {
	Key        Key
	TCPFlags   uint8 // TCP header flag bits (FIN 0x01 … CWR 0x80)
	Seq, Ack   uint32
	Window     uint16
	PayloadLen int // transport payload bytes
	Len        int // whole IP packet bytes, for counters
	ICMPType   uint8
	ICMPCode   uint8

	// TCP options, read by the window tracker (van Rooij, as in Linux
	// tcp_in_window). TCPOpts says the parser walked the option list and
	// the three fields after it are meaningful; a connection whose SYN or
	// SYN/ACK comes without TCPOpts is tracked liberally (no window
	// checks), since its window scaling is unknown. A window scale of 0
	// behaves exactly like an absent one.
	TCPOpts  bool
	WScale   int8   // window scale shift from a SYN's option 3; -1 absent. Values above 14 count as 14 (RFC 7323)
	SACKPerm bool   // a SYN carries option 4 (SACK permitted)
	SACKEdge uint32 // highest right edge among the SACK blocks (option 5) of this segment; 0 = none
}

// Quote is what an ICMP error quotes of the packet that caused it (the
// stack parses it from the error's payload; see TrackICMPErrorQuote).
type Quote struct {
	Key   Key    // the quoted packet's key, in the direction it travelled
	L4Len int    // bytes of the quoted transport header present (at least 8 for a usable quote)
	Seq   uint32 // TCP: the quoted sequence number (transport bytes 4-7)
	// ICMPType is the quoted packet's ICMP type when Key.Proto is ICMP or
	// ICMPv6; an error quoting an error is invalid.
	ICMPType uint8
}

// Dir is the direction of a packet relative to the flow's first packet.
type Dir uint8

const (
	DirOriginal Dir = iota // same direction as the packet that created the flow
	DirReply               // the opposite direction
)

// CtState is the per-packet state rules see as ct_state.
type CtState uint8

const (
	StateNew         CtState = iota // no entry yet, and the packet may start one
	StateEstablished                // belongs to a tracked flow
	StateRelated                    // an ICMP error about a tracked flow
	StateInvalid                    // matches nothing and cannot start a flow, or breaks the flow's state machine
)

// Verdict is the decision cached on a flow. Its meaning belongs to the
// caller (the stack stores the policy's action and stable rule ID).
type Verdict struct {
	Action uint8
	Rule   uint32
}

// Result is what Track reports for one packet.
type Result struct {
	Found   bool    // an entry exists for this packet's flow
	Dir     Dir     // direction of the packet within the flow (valid when Found)
	State   CtState // state to report to policy
	Verdict Verdict // cached verdict (valid when Found)
}
