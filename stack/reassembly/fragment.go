package reassembly

// key names the datagram a fragment belongs to: source, destination,
// protocol and identification for IPv4 (RFC 791), source, destination and
// identification for IPv6, whose fragments may disagree on the next header
// (RFC 8200 §4.5).
type key struct {
	src, dst [16]byte // IPv4 addresses in the first 4 bytes
	id       uint32
	proto    uint8 // IPv4 only; 0 for IPv6
	v6       bool
}

// fragment is what parsing one fragment learned. Its slices point into
// the caller's packet, which Add must copy from before it returns.
type fragment struct {
	key     key
	off     int    // where payload starts in the datagram's fragmentable part
	more    bool   // More Fragments: not the last
	payload []byte // the fragment's data, header chain after the Fragment header included
	// hdr is what the reassembled datagram starts with when this is the
	// first fragment: the IPv4 header with its options, or the IPv6
	// header and the extension headers before the Fragment header (the
	// unfragmentable part, RFC 8200 §4.5).
	hdr    []byte
	nhPos  int   // IPv6: index in hdr of the Next Header byte that names the Fragment header
	next   uint8 // IPv6: the Fragment header's Next Header, which replaces it
	ecn    uint8 // the ECN codepoint, 0..3
	atomic bool  // IPv6 offset 0 and M = 0 (RFC 6946): a whole datagram already
}

func (f *fragment) end() int { return f.off + len(f.payload) }

// parse checks b as one fragment and fills f, or says why b cannot be
// taken. Only what the fragment shows by itself is checked here; what it
// means for its datagram is the datagram's business.
func parse(b []byte, f *fragment) Reason {
	if len(b) == 0 {
		return ReasonMalformed
	}
	switch b[0] >> 4 {
	case 4:
		return parseIPv4(b, f)
	case 6:
		return parseIPv6(b, f)
	}
	return ReasonMalformed
}

// checkLength applies the rules every fragment obeys whatever its
// datagram: it carries data, and all but the last carry a multiple of 8
// bytes, since the next one's offset counts 8-octet units (RFC 791, RFC
// 8200 §4.5). Linux trims a non-last IPv4 fragment's data to a multiple
// of 8 instead; refusing it is simpler, and no conforming sender sends
// one. Linux also discards the datagram of a fragment with no data; here
// only that fragment goes, since it changes nothing a datagram holds.
func checkLength(f *fragment) Reason {
	if len(f.payload) == 0 || f.more && len(f.payload)%8 != 0 {
		return ReasonBadLength
	}
	return ReasonNone
}
