package stack

import (
	"encoding/binary"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// replyTTL is the TTL / hop limit of packets the gateway synthesizes.
const replyTTL = 64

// ipv6MinMTU bounds ICMPv6 errors: RFC 4443 §2.4 (c) says include as much
// of the offending packet as fits without exceeding the minimum MTU.
const ipv6MinMTU = 1280

// putIPHeader writes an IP header from src to dst into out and returns its
// length. For IPv4, total is the whole packet length; for IPv6 the payload
// length is derived from it.
func putIPHeader(out []byte, family uint8, src, dst []byte, proto uint8, total int) int {
	if family == 4 {
		h := out[:header.IPv4MinimumSize]
		h[0] = 0x45
		h[1] = 0
		binary.BigEndian.PutUint16(h[2:], uint16(total))
		binary.BigEndian.PutUint16(h[4:], 0)      // ID: DF is set, no fragmentation
		binary.BigEndian.PutUint16(h[6:], 0x4000) // DF
		h[8] = replyTTL
		h[9] = proto
		h[10], h[11] = 0, 0
		copy(h[12:16], src)
		copy(h[16:20], dst)
		binary.BigEndian.PutUint16(h[10:], ^checksum.Checksum(h, 0))
		return header.IPv4MinimumSize
	}
	h := out[:header.IPv6MinimumSize]
	h[0], h[1], h[2], h[3] = 0x60, 0, 0, 0
	binary.BigEndian.PutUint16(h[4:], uint16(total-header.IPv6MinimumSize))
	h[6] = proto
	h[7] = replyTTL
	copy(h[8:24], src)
	copy(h[24:40], dst)
	return header.IPv6MinimumSize
}

// addrs returns the packet's source and destination address bytes.
func addrs(b []byte, family uint8) (src, dst []byte) {
	if family == 4 {
		return b[12:16], b[16:20]
	}
	return b[8:24], b[24:40]
}

// setTransportChecksum fills the checksum at pkt[l4+csumOff] over the
// pseudo-header (TCP, UDP, ICMPv6) or the message alone (ICMPv4).
func setTransportChecksum(pkt []byte, family uint8, l4, csumOff int, proto uint8) {
	seg := pkt[l4:]
	seg[csumOff], seg[csumOff+1] = 0, 0
	var sum uint16
	if proto != protoICMP {
		src, dst := addrs(pkt, family)
		sum = checksum.Checksum(src, 0)
		sum = checksum.Checksum(dst, sum)
		sum = checksum.Combine(sum, uint16(proto))
		sum = checksum.Combine(sum, uint16(len(seg)))
	}
	binary.BigEndian.PutUint16(seg[csumOff:], ^checksum.Checksum(seg, sum))
}

// buildTCPReset writes into out the RST answering the TCP packet b (as
// RFC 9293 §3.10.7.1 prescribes for a closed port) and returns its length.
// out must hold at least 60 bytes.
func buildTCPReset(out, b []byte, p *parsed) int {
	src, dst := addrs(b, p.family)
	ipLen := header.IPv4MinimumSize
	if p.family == 6 {
		ipLen = header.IPv6MinimumSize
	}
	total := ipLen + header.TCPMinimumSize
	putIPHeader(out, p.family, dst, src, protoTCP, total)
	t := out[ipLen:total]
	binary.BigEndian.PutUint16(t[0:], p.ct.Key.DstPort)
	binary.BigEndian.PutUint16(t[2:], p.ct.Key.SrcPort)
	const (
		fin = 0x01
		syn = 0x02
		rst = 0x04
		ack = 0x10
	)
	var seq, ackNum uint32
	flags := uint8(rst)
	if p.ct.TCPFlags&ack != 0 {
		seq = p.ct.Ack
	} else {
		ackNum = p.ct.Seq + uint32(p.ct.PayloadLen)
		if p.ct.TCPFlags&syn != 0 {
			ackNum++
		}
		if p.ct.TCPFlags&fin != 0 {
			ackNum++
		}
		flags |= ack
	}
	binary.BigEndian.PutUint32(t[4:], seq)
	binary.BigEndian.PutUint32(t[8:], ackNum)
	t[12] = (header.TCPMinimumSize / 4) << 4
	t[13] = flags
	binary.BigEndian.PutUint16(t[14:], 0) // window
	binary.BigEndian.PutUint16(t[18:], 0) // urgent
	setTransportChecksum(out[:total], p.family, ipLen, 16, protoTCP)
	return total
}

// buildPortUnreachable writes into out the ICMP (v4: type 3 code 3) or
// ICMPv6 (type 1 code 4) port unreachable error for packet b, quoting the
// offending IP header plus 8 bytes (v4, RFC 792) or as much as fits in
// 1280 bytes (v6, RFC 4443). out must hold ipv6MinMTU bytes.
func buildPortUnreachable(out, b []byte, p *parsed) int {
	if p.family == 4 {
		return buildICMPError(out, b, p, uint8(header.ICMPv4DstUnreachable), uint8(header.ICMPv4PortUnreachable))
	}
	return buildICMPError(out, b, p, uint8(header.ICMPv6DstUnreachable), uint8(header.ICMPv6PortUnreachable))
}

// buildAdminProhibited is buildPortUnreachable for reject_with =
// "icmp-admin-prohibited": ICMP type 3 code 13 (communication
// administratively prohibited, RFC 1812 §5.2.7.1) or ICMPv6 type 1 code 1
// (administratively prohibited, RFC 4443 §3.1).
func buildAdminProhibited(out, b []byte, p *parsed) int {
	if p.family == 4 {
		return buildICMPError(out, b, p, uint8(header.ICMPv4DstUnreachable), uint8(header.ICMPv4AdminProhibited))
	}
	return buildICMPError(out, b, p, uint8(header.ICMPv6DstUnreachable), uint8(header.ICMPv6Prohibited))
}

// buildICMPError writes an ICMP or ICMPv6 error of type typ and code code
// about packet b, quoting as buildPortUnreachable describes.
func buildICMPError(out, b []byte, p *parsed, typ, code uint8) int {
	b = b[:p.end]
	src, dst := addrs(b, p.family)
	var ipLen, quote int
	var proto uint8
	if p.family == 4 {
		ipLen, proto = header.IPv4MinimumSize, protoICMP
		quote = min(len(b), p.l4+8)
	} else {
		ipLen, proto = header.IPv6MinimumSize, protoICMPv6
		quote = min(len(b), ipv6MinMTU-ipLen-8)
	}
	total := ipLen + 8 + quote
	putIPHeader(out, p.family, dst, src, proto, total)
	m := out[ipLen:total]
	m[0], m[1] = typ, code
	m[4], m[5], m[6], m[7] = 0, 0, 0, 0
	copy(m[8:], b[:quote])
	setTransportChecksum(out[:total], p.family, ipLen, 2, proto)
	return total
}
