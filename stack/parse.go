package stack

import (
	"encoding/binary"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tungate/tungate/conntrack"
)

// IANA protocol numbers the hook handles.
const (
	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58
)

// IPv6 extension headers the hook walks (RFC 8200 §4). Anything else that
// is not a transport the stack terminates ends the walk with a drop.
const (
	ip6HopByHop = 0
	ip6Routing  = 43
	ip6Fragment = 44
	ip6DestOpts = 60
	ip6NoNext   = 59
)

// maxExtHeaders bounds the IPv6 extension header walk so a crafted chain
// cannot make the hook loop; RFC 8200 recommends each at most once (two
// for destination options), so eight is generous.
const maxExtHeaders = 8

// parsed is what parsePacket learned about one packet: the conntrack view
// plus the offsets reject and echo synthesis need. It lives on the reader's
// stack and is reused, so filling it allocates nothing.
type parsed struct {
	ct      conntrack.Packet
	family  uint8 // 4 or 6
	l4      int   // offset of the transport (or ICMP) header
	payload int   // offset of the transport payload
	end     int   // IP total length: bytes after it are link padding
	icmpErr bool  // an ICMP/ICMPv6 error; quote describes the packet it quotes
	quote   conntrack.Quote
	echoReq bool // an ICMP/ICMPv6 echo request
	trusted bool // gVisor's own output: checksums are known good
}

// parsePacket checks b as one raw IP packet and fills p. It returns
// reasonNone when the packet is well formed and of a kind the stack
// handles, and otherwise the reason it must be dropped. It never panics on
// any input (FuzzParse) and allocates nothing.
func parsePacket(b []byte, p *parsed) dropReason {
	return parse(b, p, false)
}

// parseOutbound parses a packet gVisor emitted. It skips checksum
// verification (gVisor just computed them) but keeps every other check, so
// gVisor's own chatter (MLD, neighbour discovery) never reaches the TUN.
func parseOutbound(b []byte, p *parsed) dropReason {
	return parse(b, p, true)
}

func parse(b []byte, p *parsed, trusted bool) dropReason {
	*p = parsed{trusted: trusted}
	if len(b) < 1 {
		return reasonShort
	}
	var r dropReason
	switch b[0] >> 4 {
	case 4:
		r = parseIPv4(b, p)
	case 6:
		r = parseIPv6(b, p)
	default:
		return reasonVersion
	}
	if r != reasonNone {
		return r
	}
	p.ct.Len = p.end
	return parseTransport(b[:p.end], p)
}

func parseIPv4(b []byte, p *parsed) dropReason {
	if len(b) < header.IPv4MinimumSize {
		return reasonShort
	}
	ihl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:]))
	if ihl < header.IPv4MinimumSize || total < ihl || total > len(b) {
		return reasonIPHeader
	}
	if !p.trusted && checksum.Checksum(b[:ihl], 0) != 0xffff {
		return reasonIPChecksum
	}
	// Fragments are dropped: only a reassembled datagram has the ports and
	// payload policy decides on, and clients behind a TUN with a sane MTU
	// do not fragment TCP. Reassembly is future work.
	if ff := binary.BigEndian.Uint16(b[6:]); ff&0x3fff != 0 {
		return reasonFragment
	}
	p.family = 4
	p.end = total
	p.l4 = ihl
	p.ct.Key.Family = 4
	p.ct.Key.Proto = b[9]
	copy(p.ct.Key.Src[:4], b[12:16])
	copy(p.ct.Key.Dst[:4], b[16:20])
	return reasonNone
}

func parseIPv6(b []byte, p *parsed) dropReason {
	if len(b) < header.IPv6MinimumSize {
		return reasonShort
	}
	plen := int(binary.BigEndian.Uint16(b[4:]))
	// A zero payload length means a jumbogram (RFC 2675) unless the packet
	// really is header-only; neither fits a TUN MTU, so both are malformed.
	if plen == 0 || header.IPv6MinimumSize+plen > len(b) {
		return reasonIPHeader
	}
	end := header.IPv6MinimumSize + plen
	proto, off, r := walkIPv6(b[:end])
	if r != reasonNone {
		return r
	}
	p.family = 6
	p.end = end
	p.l4 = off
	p.ct.Key.Family = 6
	p.ct.Key.Proto = proto
	copy(p.ct.Key.Src[:], b[8:24])
	copy(p.ct.Key.Dst[:], b[24:40])
	return reasonNone
}

// walkIPv6 follows the extension header chain of the IPv6 packet b (at
// least the fixed header) to the transport header and returns its protocol
// and offset.
func walkIPv6(b []byte) (proto uint8, off int, r dropReason) {
	next := b[6]
	off = header.IPv6MinimumSize
	for i := 0; ; i++ {
		switch next {
		case protoTCP, protoUDP, protoICMPv6:
			return next, off, reasonNone
		case ip6HopByHop, ip6Routing, ip6DestOpts:
			if i >= maxExtHeaders || off+8 > len(b) {
				return 0, 0, reasonExtHeader
			}
			n := (int(b[off+1]) + 1) * 8
			if off+n > len(b) {
				return 0, 0, reasonExtHeader
			}
			next = b[off]
			off += n
		case ip6Fragment:
			return 0, 0, reasonFragment
		default:
			return 0, 0, reasonProto
		}
	}
}

// parseTransport validates the transport header at p.l4 and fills the
// ports, flags and payload length; b is trimmed to the IP total length.
func parseTransport(b []byte, p *parsed) dropReason {
	l4 := b[p.l4:]
	switch p.ct.Key.Proto {
	case protoTCP:
		if len(l4) < header.TCPMinimumSize {
			return reasonTransport
		}
		doff := int(l4[12]>>4) * 4
		if doff < header.TCPMinimumSize || doff > len(l4) {
			return reasonTransport
		}
		if !p.trusted && transportSum(b, p, l4) != 0xffff {
			return reasonChecksum
		}
		// Impossible flag combinations (NULL, SYN+FIN, XMAS, …) are well
		// formed: their invalidity is conntrack's to judge and count, so
		// operators see scans in the conntrack invalid counter.
		flags := l4[13]
		parseTCPOptions(l4[header.TCPMinimumSize:doff], flags, &p.ct)
		p.ct.Key.SrcPort = binary.BigEndian.Uint16(l4[0:])
		p.ct.Key.DstPort = binary.BigEndian.Uint16(l4[2:])
		p.ct.Seq = binary.BigEndian.Uint32(l4[4:])
		p.ct.Ack = binary.BigEndian.Uint32(l4[8:])
		p.ct.TCPFlags = flags
		p.ct.Window = binary.BigEndian.Uint16(l4[14:])
		p.payload = p.l4 + doff
		p.ct.PayloadLen = len(l4) - doff
		return reasonNone
	case protoUDP:
		if len(l4) < header.UDPMinimumSize {
			return reasonTransport
		}
		ulen := int(binary.BigEndian.Uint16(l4[4:]))
		if ulen < header.UDPMinimumSize || ulen > len(l4) {
			return reasonTransport
		}
		l4 = l4[:ulen]
		csum := binary.BigEndian.Uint16(l4[6:])
		// IPv4 allows "no checksum"; IPv6 does not (RFC 8200 §8.1).
		if !p.trusted && (csum != 0 || p.family == 6) {
			if transportSum(b, p, l4) != 0xffff {
				return reasonChecksum
			}
		}
		p.ct.Key.SrcPort = binary.BigEndian.Uint16(l4[0:])
		p.ct.Key.DstPort = binary.BigEndian.Uint16(l4[2:])
		p.payload = p.l4 + header.UDPMinimumSize
		p.ct.PayloadLen = ulen - header.UDPMinimumSize
		return reasonNone
	case protoICMP:
		if p.family != 4 {
			return reasonProto
		}
		if len(l4) < header.ICMPv4MinimumSize {
			return reasonTransport
		}
		if !p.trusted && checksum.Checksum(l4, 0) != 0xffff {
			return reasonChecksum
		}
		return parseICMP(l4, p, uint8(header.ICMPv4Echo), uint8(header.ICMPv4EchoReply))
	case protoICMPv6:
		if len(l4) < header.ICMPv6MinimumSize {
			return reasonTransport
		}
		if !p.trusted && transportSum(b, p, l4) != 0xffff {
			return reasonChecksum
		}
		return parseICMP(l4, p, uint8(header.ICMPv6EchoRequest), uint8(header.ICMPv6EchoReply))
	}
	return reasonProto
}

// parseICMP handles ICMPv4 and ICMPv6 alike: echo messages carry their
// identifier as the flow's source port (conntrack.Key), errors carry the
// key of the packet they quote so conntrack can find the flow they belong
// to (Table.TrackICMPError).
func parseICMP(l4 []byte, p *parsed, echoReq, echoReply uint8) dropReason {
	typ, code := l4[0], l4[1]
	p.ct.ICMPType, p.ct.ICMPCode = typ, code
	p.payload = p.l4 + 8
	p.ct.PayloadLen = len(l4) - 8
	switch {
	case typ == echoReq || typ == echoReply:
		p.echoReq = typ == echoReq
		p.ct.Key.SrcPort = binary.BigEndian.Uint16(l4[4:])
		return reasonNone
	case isICMPError(p.family, typ):
		p.icmpErr = true
		return parseQuoted(l4[8:], p)
	}
	// Router/neighbour discovery, MLD, timestamps and the like have no
	// business crossing a transparent gateway's TUN.
	return reasonICMPType
}

// isICMPError reports the error types that may be RELATED to a flow.
// Redirects are left out on purpose: a gateway does not honour transit
// redirects.
func isICMPError(family, typ uint8) bool {
	if family == 4 {
		switch header.ICMPv4Type(typ) {
		case header.ICMPv4DstUnreachable, header.ICMPv4TimeExceeded, header.ICMPv4ParamProblem:
			return true
		}
		return false
	}
	switch header.ICMPv6Type(typ) {
	case header.ICMPv6DstUnreachable, header.ICMPv6PacketTooBig, header.ICMPv6TimeExceeded, header.ICMPv6ParamProblem:
		return true
	}
	return false
}

// parseQuoted fills p.quote from the IP header (and first transport
// bytes) an ICMP error quotes. The key is the quoted packet's own
// direction; the quoted packet must be of the same family, unfragmented,
// and not itself an ICMP error.
func parseQuoted(q []byte, p *parsed) dropReason {
	var qt conntrack.Quote
	k := &qt.Key
	var l4 []byte
	if p.family == 4 {
		if len(q) < header.IPv4MinimumSize || q[0]>>4 != 4 {
			return reasonICMPQuote
		}
		ihl := int(q[0]&0x0f) * 4
		if ihl < header.IPv4MinimumSize || ihl+8 > len(q) {
			return reasonICMPQuote
		}
		if binary.BigEndian.Uint16(q[6:])&0x1fff != 0 {
			return reasonICMPQuote
		}
		k.Family, k.Proto = 4, q[9]
		copy(k.Src[:4], q[12:16])
		copy(k.Dst[:4], q[16:20])
		l4 = q[ihl:]
	} else {
		if len(q) < header.IPv6MinimumSize || q[0]>>4 != 6 {
			return reasonICMPQuote
		}
		proto, off, r := walkIPv6(q)
		if r != reasonNone || off+8 > len(q) {
			return reasonICMPQuote
		}
		k.Family, k.Proto = 6, proto
		copy(k.Src[:], q[8:24])
		copy(k.Dst[:], q[24:40])
		l4 = q[off:]
	}
	qt.L4Len = len(l4)
	switch k.Proto {
	case protoTCP, protoUDP:
		k.SrcPort = binary.BigEndian.Uint16(l4[0:])
		k.DstPort = binary.BigEndian.Uint16(l4[2:])
		if k.Proto == protoTCP {
			qt.Seq = binary.BigEndian.Uint32(l4[4:])
		}
	case protoICMP, protoICMPv6:
		// Only a quoted echo request can belong to a flow.
		if (k.Proto == protoICMP && l4[0] != uint8(header.ICMPv4Echo)) ||
			(k.Proto == protoICMPv6 && l4[0] != uint8(header.ICMPv6EchoRequest)) {
			return reasonICMPQuote
		}
		k.SrcPort = binary.BigEndian.Uint16(l4[4:])
		qt.ICMPType = l4[0]
	default:
		return reasonICMPQuote
	}
	p.quote = qt
	return reasonNone
}

// transportSum is the one's complement sum of the pseudo-header and l4;
// 0xffff means the checksum is right.
func transportSum(b []byte, p *parsed, l4 []byte) uint16 {
	var sum uint16
	if p.family == 4 {
		sum = checksum.Checksum(b[12:20], 0)
	} else {
		sum = checksum.Checksum(b[8:40], 0)
	}
	sum = checksum.Combine(sum, uint16(p.ct.Key.Proto))
	sum = checksum.Combine(sum, uint16(len(l4)))
	return checksum.Checksum(l4, sum)
}

// TCP option kinds conntrack's window tracking reads (RFC 9293, 7323,
// 2018).
const (
	tcpOptEnd    = 0
	tcpOptNOP    = 1
	tcpOptWScale = 3
	tcpOptSACKOK = 4
	tcpOptSACK   = 5
)

// parseTCPOptions fills the option fields of c from opts, the option bytes
// of a segment with the given flags. Like Linux's tcp_parse_options it
// stops at a malformed option and keeps what it read before: a bad option
// list is the endpoints' business, not a reason to drop the segment.
// Window scale and SACK-permitted count only on a SYN (RFC 7323 §2.2,
// RFC 2018 §2).
func parseTCPOptions(opts []byte, flags uint8, c *conntrack.Packet) {
	const syn = 0x02
	c.TCPOpts = true
	c.WScale = -1
	for i := 0; i < len(opts); {
		kind := opts[i]
		if kind == tcpOptEnd {
			return
		}
		if kind == tcpOptNOP {
			i++
			continue
		}
		if i+1 >= len(opts) {
			return
		}
		n := int(opts[i+1])
		if n < 2 || i+n > len(opts) {
			return
		}
		body := opts[i+2 : i+n]
		switch {
		case kind == tcpOptWScale && n == 3 && flags&syn != 0:
			c.WScale = int8(min(body[0], 14))
		case kind == tcpOptSACKOK && n == 2 && flags&syn != 0:
			c.SACKPerm = true
		case kind == tcpOptSACK && (n-2)%8 == 0:
			for b := 0; b+8 <= len(body); b += 8 {
				right := binary.BigEndian.Uint32(body[b+4:])
				if c.SACKEdge == 0 || int32(right-c.SACKEdge) > 0 {
					c.SACKEdge = right
				}
			}
		}
		i += n
	}
}
