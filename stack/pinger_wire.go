package stack

import "encoding/binary"

// ICMP echo message types (RFC 792, RFC 4443).
const (
	icmpv4EchoReply   = 0
	icmpv4EchoRequest = 8
	icmpv6EchoRequest = 128
	icmpv6EchoReply   = 129
)

// icmpEchoHeaderLen is type, code, checksum, identifier, sequence.
const icmpEchoHeaderLen = 8

// appendEcho appends an echo request. For v4 the checksum is computed here;
// for v6 the kernel fills it in (it needs the pseudo-header we don't build).
func appendEcho(b []byte, v6 bool, id, seq uint16, payload []byte) []byte {
	typ := byte(icmpv4EchoRequest)
	if v6 {
		typ = icmpv6EchoRequest
	}
	start := len(b)
	b = append(b, typ, 0, 0, 0)
	b = binary.BigEndian.AppendUint16(b, id)
	b = binary.BigEndian.AppendUint16(b, seq)
	b = append(b, payload...)
	if !v6 {
		binary.BigEndian.PutUint16(b[start+2:], icmpChecksum(b[start:]))
	}
	return b
}

// echoMsg is a parsed echo request or reply; payload aliases the input.
type echoMsg struct {
	typ, code uint8
	id, seq   uint16
	payload   []byte
}

// parseEcho reads an ICMP/ICMPv6 message (no IP header) and reports whether it
// is an echo request or reply of the given family. The checksum is not
// checked: the kernel verified it before delivering to the raw socket.
func parseEcho(b []byte, v6 bool) (echoMsg, bool) {
	if len(b) < icmpEchoHeaderLen {
		return echoMsg{}, false
	}
	m := echoMsg{
		typ:     b[0],
		code:    b[1],
		id:      binary.BigEndian.Uint16(b[4:]),
		seq:     binary.BigEndian.Uint16(b[6:]),
		payload: b[icmpEchoHeaderLen:],
	}
	switch {
	case !v6 && (m.typ == icmpv4EchoReply || m.typ == icmpv4EchoRequest):
	case v6 && (m.typ == icmpv6EchoReply || m.typ == icmpv6EchoRequest):
	default:
		return echoMsg{}, false
	}
	if m.code != 0 {
		return echoMsg{}, false
	}
	return m, true
}

// icmpChecksum is the RFC 1071 internet checksum of b.
func icmpChecksum(b []byte) uint16 {
	var sum uint32
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}
