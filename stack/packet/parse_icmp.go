package packet

import (
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tungate/tungate/conntrack"
)

// parseICMP handles ICMPv4 and ICMPv6 alike: echo messages carry their
// identifier as the flow's source port (conntrack.Key), errors carry the
// key of the packet they quote so conntrack can find the flow they belong
// to (Table.TrackICMPError).
func parseICMP(l4 []byte, p *Parsed, echoReq, echoReply uint8) DropReason {
	// ICMPv4 and ICMPv6 share the first 8 bytes' layout.
	m := header.ICMPv4(l4)
	typ, code := uint8(m.Type()), uint8(m.Code())
	p.CT.ICMPType, p.CT.ICMPCode = typ, code
	p.Payload = p.L4 + header.ICMPv4MinimumSize
	p.CT.PayloadLen = len(l4) - header.ICMPv4MinimumSize
	switch {
	case typ == echoReq || typ == echoReply:
		p.EchoReq = typ == echoReq
		p.CT.Key.SrcPort = m.Ident()
		return ReasonNone
	case isICMPError(p.Family, typ):
		p.ICMPErr = true
		return parseQuoted(m.Payload(), p)
	}
	// Router/neighbour discovery, MLD, timestamps and the like have no
	// business crossing a transparent gateway's TUN.
	return ReasonICMPType
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

// parseQuoted fills p.Quote from the IP header (and first transport
// bytes) an ICMP error quotes. The key is the quoted packet's own
// direction; the quoted packet must be of the same family, unfragmented,
// and not itself an ICMP error. The quote may be cut short anywhere
// after its first 8 transport bytes (RFC 792, RFC 4443 §2.4 (c)), so its
// lengths are not checked.
func parseQuoted(q []byte, p *Parsed) DropReason {
	var qt conntrack.Quote
	k := &qt.Key
	var l4 []byte
	if p.Family == 4 {
		if len(q) < header.IPv4MinimumSize || header.IPVersion(q) != header.IPv4Version {
			return ReasonICMPQuote
		}
		ip := header.IPv4(q)
		ihl := int(ip.HeaderLength())
		if ihl < header.IPv4MinimumSize || ihl+8 > len(q) {
			return ReasonICMPQuote
		}
		// A later fragment has no transport header to find a flow by.
		if ip.FragmentOffset() != 0 {
			return ReasonICMPQuote
		}
		k.Family, k.Proto = 4, ip.Protocol()
		copy(k.Src[:4], ip.SourceAddressSlice())
		copy(k.Dst[:4], ip.DestinationAddressSlice())
		l4 = q[ihl:]
	} else {
		if len(q) < header.IPv6MinimumSize || header.IPVersion(q) != header.IPv6Version {
			return ReasonICMPQuote
		}
		proto, off, r := walkIPv6(q)
		if r != ReasonNone || off+8 > len(q) {
			return ReasonICMPQuote
		}
		ip := header.IPv6(q)
		k.Family, k.Proto = 6, proto
		copy(k.Src[:], ip.SourceAddressSlice())
		copy(k.Dst[:], ip.DestinationAddressSlice())
		l4 = q[off:]
	}
	qt.L4Len = len(l4)
	switch k.Proto {
	case ProtoTCP, ProtoUDP:
		// The 8 bytes an ICMPv4 error must quote hold both ports and
		// the TCP sequence number, nothing more: read no further.
		t := header.TCP(l4)
		k.SrcPort = t.SourcePort()
		k.DstPort = t.DestinationPort()
		if k.Proto == ProtoTCP {
			qt.Seq = t.SequenceNumber()
		}
	case ProtoICMP, ProtoICMPv6:
		// Only a quoted echo request of the quote's own family can belong
		// to a flow.
		m := header.ICMPv4(l4)
		if (k.Proto == ProtoICMP && (p.Family != 4 || m.Type() != header.ICMPv4Echo)) ||
			(k.Proto == ProtoICMPv6 && (p.Family != 6 || header.ICMPv6Type(m.Type()) != header.ICMPv6EchoRequest)) {
			return ReasonICMPQuote
		}
		k.SrcPort = m.Ident()
		qt.ICMPType = uint8(m.Type())
	default:
		return ReasonICMPQuote
	}
	p.Quote = qt
	return ReasonNone
}
