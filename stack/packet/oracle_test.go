package packet

import (
	"encoding/binary"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tungate/tungate/conntrack"
)

// The synthesis code as stack/ had it before this package, writing bytes
// at fixed offsets, kept verbatim (but for field names) as the oracle the
// typed-encoder builders must match byte for byte, and as the tests'
// packet builder, independent of the code under test.

func oldPutIPHeader(out []byte, family uint8, src, dst []byte, proto uint8, total int) int {
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

func oldAddrs(b []byte, family uint8) (src, dst []byte) {
	if family == 4 {
		return b[12:16], b[16:20]
	}
	return b[8:24], b[24:40]
}

func oldSetTransportChecksum(pkt []byte, family uint8, l4, csumOff int, proto uint8) {
	seg := pkt[l4:]
	seg[csumOff], seg[csumOff+1] = 0, 0
	var sum uint16
	if proto != ProtoICMP {
		src, dst := oldAddrs(pkt, family)
		sum = checksum.Checksum(src, 0)
		sum = checksum.Checksum(dst, sum)
		sum = checksum.Combine(sum, uint16(proto))
		sum = checksum.Combine(sum, uint16(len(seg)))
	}
	binary.BigEndian.PutUint16(seg[csumOff:], ^checksum.Checksum(seg, sum))
}

func oldBuildTCPReset(out, b []byte, p *Parsed) int {
	src, dst := oldAddrs(b, p.Family)
	ipLen := header.IPv4MinimumSize
	if p.Family == 6 {
		ipLen = header.IPv6MinimumSize
	}
	total := ipLen + header.TCPMinimumSize
	oldPutIPHeader(out, p.Family, dst, src, ProtoTCP, total)
	t := out[ipLen:total]
	binary.BigEndian.PutUint16(t[0:], p.CT.Key.DstPort)
	binary.BigEndian.PutUint16(t[2:], p.CT.Key.SrcPort)
	const (
		fin = 0x01
		syn = 0x02
		rst = 0x04
		ack = 0x10
	)
	var seq, ackNum uint32
	flags := uint8(rst)
	if p.CT.TCPFlags&ack != 0 {
		seq = p.CT.Ack
	} else {
		ackNum = p.CT.Seq + uint32(p.CT.PayloadLen)
		if p.CT.TCPFlags&syn != 0 {
			ackNum++
		}
		if p.CT.TCPFlags&fin != 0 {
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
	oldSetTransportChecksum(out[:total], p.Family, ipLen, 16, ProtoTCP)
	return total
}

func oldBuildICMPError(out, b []byte, p *Parsed, kind Unreachable) int {
	typ, code := uint8(header.ICMPv4DstUnreachable), uint8(header.ICMPv4PortUnreachable)
	switch {
	case p.Family == 4 && kind == AdminProhibited:
		code = uint8(header.ICMPv4AdminProhibited)
	case p.Family == 6 && kind == PortUnreachable:
		typ, code = uint8(header.ICMPv6DstUnreachable), uint8(header.ICMPv6PortUnreachable)
	case p.Family == 6:
		typ, code = uint8(header.ICMPv6DstUnreachable), uint8(header.ICMPv6Prohibited)
	}
	b = b[:p.End]
	src, dst := oldAddrs(b, p.Family)
	var ipLen, quote int
	var proto uint8
	if p.Family == 4 {
		ipLen, proto = header.IPv4MinimumSize, ProtoICMP
		quote = min(len(b), p.L4+8)
	} else {
		ipLen, proto = header.IPv6MinimumSize, ProtoICMPv6
		quote = min(len(b), IPv6MinMTU-ipLen-8)
	}
	total := ipLen + 8 + quote
	oldPutIPHeader(out, p.Family, dst, src, proto, total)
	m := out[ipLen:total]
	m[0], m[1] = typ, code
	m[4], m[5], m[6], m[7] = 0, 0, 0, 0
	copy(m[8:], b[:quote])
	oldSetTransportChecksum(out[:total], p.Family, ipLen, 2, proto)
	return total
}

func oldBuildEchoReply(out []byte, family uint8, k *conntrack.Key, seq uint16, payload []byte) int {
	ipLen, proto, typ := header.IPv4MinimumSize, uint8(ProtoICMP), uint8(header.ICMPv4EchoReply)
	src, dst := k.Dst[:4], k.Src[:4]
	if family == 6 {
		ipLen, proto, typ = header.IPv6MinimumSize, ProtoICMPv6, uint8(header.ICMPv6EchoReply)
		src, dst = k.Dst[:], k.Src[:]
	}
	total := ipLen + 8 + len(payload)
	oldPutIPHeader(out, family, src, dst, proto, total)
	m := out[ipLen:total]
	m[0], m[1] = typ, 0
	binary.BigEndian.PutUint16(m[4:], k.SrcPort)
	binary.BigEndian.PutUint16(m[6:], seq)
	copy(m[8:], payload)
	oldSetTransportChecksum(out[:total], family, ipLen, 2, proto)
	return total
}
