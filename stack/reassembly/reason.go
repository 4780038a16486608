package reassembly

import "fmt"

// Result is what Add did with a fragment.
type Result uint8

const (
	// Dropped: the fragment was discarded (see the Reason); for some
	// reasons the whole datagram it belonged to was discarded too.
	Dropped Result = iota
	// Held: the fragment is kept until its datagram completes, times out
	// or is evicted.
	Held
	// Complete: the fragment completed its datagram, written to out.
	Complete
)

var resultNames = [...]string{Dropped: "dropped", Held: "held", Complete: "complete"}

func (r Result) String() string {
	if int(r) < len(resultNames) {
		return resultNames[r]
	}
	return "unknown"
}

// Reason says why a fragment, or a whole datagram, was discarded. When a
// reason discards the whole datagram (DiscardsDatagram), its key is
// remembered until the datagram's timeout and every later fragment under
// it is dropped for the same reason.
type Reason uint8

const (
	ReasonNone Reason = iota
	// ReasonOverlap: the fragment overlaps a held one without being its
	// exact duplicate. The whole datagram is discarded (RFC 5722 for
	// IPv6; Linux does the same for IPv4 since 4.19).
	ReasonOverlap
	// ReasonDuplicate: an exact duplicate of a held fragment (same extent,
	// same bytes, same More flag). Only the copy is dropped; the datagram
	// goes on.
	ReasonDuplicate
	// ReasonTooBig: the datagram would exceed 65,535 bytes (IPv4 total
	// length, IPv6 payload length): the ping of death.
	ReasonTooBig
	// ReasonTinyFirst: the first fragment does not hold the whole
	// transport header (RFC 1858 §3.1), for IPv6 the whole header chain up
	// to and including the upper-layer header (RFC 7112), or an IPv4 TCP
	// fragment starts at offset 8, where it could rewrite the TCP flags
	// (RFC 1858 §3.2).
	ReasonTinyFirst
	// ReasonBadLength: a fragment with no data, or a non-last fragment
	// whose data is not a multiple of 8 bytes (RFC 791, RFC 8200 §4.5).
	ReasonBadLength
	// ReasonInconsistent: fragments disagree about the datagram: two
	// different ends, data past a known end, a duplicate that changes the
	// More flag, or ECN codepoints that cannot be merged (RFC 3168 §5.3).
	// The whole datagram is discarded.
	ReasonInconsistent
	// ReasonTooManyFragments: the datagram would hold more than
	// maxFragments fragments. The whole datagram is discarded.
	ReasonTooManyFragments
	// ReasonMemory: evicted, oldest first, to stay within Config.Memory,
	// or refused because its datagram alone would not fit.
	ReasonMemory
	// ReasonTimeout: still incomplete Config.Timeout after its first
	// fragment arrived.
	ReasonTimeout
	// ReasonMalformed: not a fragment that can be parsed: truncated
	// headers, no Fragment header, a Hop-by-Hop header anywhere but
	// first (RFC 8200 §4.3), a second Fragment header, a header chain
	// longer than maxExtHeaders.
	ReasonMalformed
	NumReasons
)

// reasonNames are metric labels: renaming one breaks whoever watches it.
var reasonNames = [NumReasons]string{
	ReasonNone:             "none",
	ReasonOverlap:          "overlap",
	ReasonDuplicate:        "duplicate",
	ReasonTooBig:           "too_big",
	ReasonTinyFirst:        "tiny_first",
	ReasonBadLength:        "bad_length",
	ReasonInconsistent:     "inconsistent",
	ReasonTooManyFragments: "too_many_fragments",
	ReasonMemory:           "memory",
	ReasonTimeout:          "timeout",
	ReasonMalformed:        "malformed",
}

func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// DiscardsDatagram reports whether a fragment Add refuses for r takes the
// whole datagram it belongs to with it, leaving a tombstone: these reasons
// mean the fragments already held cannot be trusted to form the datagram
// the sender meant. (Memory and timeout discard datagrams too, but not
// through Add's answer about the fragment in hand.)
func (r Reason) DiscardsDatagram() bool {
	switch r {
	case ReasonOverlap, ReasonInconsistent, ReasonTooBig, ReasonTooManyFragments:
		return true
	}
	return false
}

var (
	_ fmt.Stringer = Result(0)
	_ fmt.Stringer = Reason(0)
)
