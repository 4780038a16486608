package packet

import (
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tungate/tungate/conntrack"
)

// CanReplyTo refuses to answer what must never be answered (RFC 1122
// §3.2.2, RFC 4443 §2.4 (e), RFC 9293 §3.10.7.1): ICMP errors, TCP
// resets, and packets from or to unspecified, multicast or broadcast
// addresses.
func CanReplyTo(p *Parsed) bool {
	if p.ICMPErr || (p.CT.Key.Proto == ProtoTCP && p.CT.TCPFlags&TCPRst != 0) {
		return false
	}
	src := p.CT.Key.SrcAddr()
	dst := p.CT.Key.DstAddr()
	if src.IsUnspecified() || src.IsMulticast() || dst.IsMulticast() {
		return false
	}
	// Only the limited broadcast: a directed broadcast looks like any
	// unicast address without the subnet's prefix length.
	broadcast := [4]byte{255, 255, 255, 255}
	if p.Family == 4 && (src.As4() == broadcast || dst.As4() == broadcast) {
		return false
	}
	return true
}

// TCPReset writes into out the RST answering the TCP packet p describes,
// as RFC 9293 §3.10.7.1 prescribes for a closed port, and returns its
// length. out must hold at least 60 bytes.
func TCPReset(out []byte, p *Parsed) int {
	k := &p.CT.Key
	ipLen := ipHeaderLen(p.Family)
	total := ipLen + header.TCPMinimumSize
	src, dst := tcpipAddr(&k.Dst, p.Family), tcpipAddr(&k.Src, p.Family)
	encodeIP(out, p.Family, src, dst, ProtoTCP, total)
	seq, ack, flags := resetNumbers(&p.CT)
	t := header.TCP(out[ipLen:total])
	t.Encode(&header.TCPFields{
		SrcPort:    k.DstPort,
		DstPort:    k.SrcPort,
		SeqNum:     seq,
		AckNum:     ack,
		DataOffset: header.TCPMinimumSize,
		Flags:      header.TCPFlags(flags),
	})
	t.SetChecksum(^transportSum(ProtoTCP, src, dst, t))
	return total
}

// resetNumbers are the sequence and acknowledgment numbers and flags of
// the RST answering c: a segment with ACK gets <SEQ=SEG.ACK><CTL=RST>,
// one without gets <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>, where SYN
// and FIN each count one (RFC 9293 §3.10.7.1).
func resetNumbers(c *conntrack.Packet) (seq, ack uint32, flags uint8) {
	if c.TCPFlags&TCPAck != 0 {
		return c.Ack, 0, TCPRst
	}
	ack = c.Seq + uint32(c.PayloadLen)
	if c.TCPFlags&TCPSyn != 0 {
		ack++
	}
	if c.TCPFlags&TCPFin != 0 {
		ack++
	}
	return 0, ack, TCPRst | TCPAck
}

// Unreachable is the destination unreachable error ICMPError sends.
type Unreachable uint8

const (
	// PortUnreachable is ICMP type 3 code 3, ICMPv6 type 1 code 4: what a
	// closed port answers.
	PortUnreachable Unreachable = iota
	// AdminProhibited is reject_with = "icmp-admin-prohibited": ICMP
	// type 3 code 13 (communication administratively prohibited, RFC 1812
	// §5.2.7.1) or ICMPv6 type 1 code 1 (RFC 4443 §3.1).
	AdminProhibited
	// HostUnreachable is ICMP type 3 code 1, ICMPv6 type 1 code 3
	// (address unreachable): no host answered for the destination.
	HostUnreachable
	// NetUnreachable is ICMP type 3 code 0, ICMPv6 type 1 code 0 (no route
	// to destination).
	NetUnreachable
)

// icmpCodes are each kind's (ICMPv4, ICMPv6) codes.
var icmpCodes = [...][2]uint8{
	PortUnreachable: {uint8(header.ICMPv4PortUnreachable), uint8(header.ICMPv6PortUnreachable)},
	AdminProhibited: {uint8(header.ICMPv4AdminProhibited), uint8(header.ICMPv6Prohibited)},
	HostUnreachable: {uint8(header.ICMPv4HostUnreachable), uint8(header.ICMPv6AddressUnreachable)},
	NetUnreachable:  {uint8(header.ICMPv4NetUnreachable), uint8(header.ICMPv6NetworkUnreachable)},
}

// ICMPError writes into out the ICMP (IPv4) or ICMPv6 destination
// unreachable error of the given kind about packet b, which p describes,
// and returns its length. It quotes the offending IP header plus 8 bytes
// (v4, RFC 792) or as much of the packet as fits in IPv6MinMTU bytes (v6,
// RFC 4443 §2.4 (c)). out must hold IPv6MinMTU bytes.
func ICMPError(out, b []byte, p *Parsed, kind Unreachable) int {
	b = b[:p.End]
	k := &p.CT.Key
	ipLen := ipHeaderLen(p.Family)
	src, dst := tcpipAddr(&k.Dst, p.Family), tcpipAddr(&k.Src, p.Family)
	var quote int
	if p.Family == 4 {
		quote = min(len(b), p.L4+8)
	} else {
		quote = min(len(b), IPv6MinMTU-ipLen-header.ICMPv6MinimumSize)
	}
	total := ipLen + header.ICMPv4MinimumSize + quote
	m := out[ipLen:total]
	// The word after the checksum is unused in a destination unreachable
	// (RFC 792, RFC 4443 §3.1) and must be zero.
	clear(m[:header.ICMPv4MinimumSize])
	copy(m[header.ICMPv4MinimumSize:], b[:quote])
	if p.Family == 4 {
		encodeIP(out, 4, src, dst, ProtoICMP, total)
		h := header.ICMPv4(m)
		h.SetType(header.ICMPv4DstUnreachable)
		h.SetCode(header.ICMPv4Code(icmpCodes[kind][0]))
		h.SetChecksum(^transportSum(ProtoICMP, src, dst, m))
		return total
	}
	encodeIP(out, 6, src, dst, ProtoICMPv6, total)
	h := header.ICMPv6(m)
	h.SetType(header.ICMPv6DstUnreachable)
	h.SetCode(header.ICMPv6Code(icmpCodes[kind][1]))
	h.SetChecksum(^transportSum(ProtoICMPv6, src, dst, m))
	return total
}
