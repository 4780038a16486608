package packet

import "gvisor.dev/gvisor/pkg/tcpip/header"

// parseTransport validates the transport header at p.L4 and fills the
// ports, flags and payload length; b is trimmed to the IP total length.
func parseTransport(b []byte, p *Parsed) DropReason {
	l4 := b[p.L4:]
	switch p.CT.Key.Proto {
	case ProtoTCP:
		return parseTCP(l4, p)
	case ProtoUDP:
		return parseUDP(l4, p)
	case ProtoICMP:
		if p.Family != 4 {
			return ReasonProto
		}
		if len(l4) < header.ICMPv4MinimumSize {
			return ReasonTransport
		}
		if !p.Trusted && !checksumValid(p, l4) {
			return ReasonChecksum
		}
		return parseICMP(l4, p, uint8(header.ICMPv4Echo), uint8(header.ICMPv4EchoReply))
	case ProtoICMPv6:
		if p.Family != 6 {
			return ReasonProto
		}
		if len(l4) < header.ICMPv6MinimumSize {
			return ReasonTransport
		}
		if !p.Trusted && !checksumValid(p, l4) {
			return ReasonChecksum
		}
		return parseICMP(l4, p, uint8(header.ICMPv6EchoRequest), uint8(header.ICMPv6EchoReply))
	}
	return ReasonProto
}

func parseTCP(l4 []byte, p *Parsed) DropReason {
	if len(l4) < header.TCPMinimumSize {
		return ReasonTransport
	}
	t := header.TCP(l4)
	doff := int(t.DataOffset())
	if doff < header.TCPMinimumSize || doff > len(l4) {
		return ReasonTransport
	}
	if !p.Trusted && !checksumValid(p, l4) {
		return ReasonChecksum
	}
	// Impossible flag combinations (NULL, SYN+FIN, XMAS, …) are well
	// formed: their invalidity is conntrack's to judge and count, so
	// operators see scans in the conntrack invalid counter.
	flags := uint8(t.Flags())
	parseTCPOptions(l4[header.TCPMinimumSize:doff], flags, &p.CT)
	p.CT.Key.SrcPort = t.SourcePort()
	p.CT.Key.DstPort = t.DestinationPort()
	p.CT.Seq = t.SequenceNumber()
	p.CT.Ack = t.AckNumber()
	p.CT.TCPFlags = flags
	p.CT.Window = t.WindowSize()
	p.Payload = p.L4 + doff
	p.CT.PayloadLen = len(l4) - doff
	return ReasonNone
}

func parseUDP(l4 []byte, p *Parsed) DropReason {
	if len(l4) < header.UDPMinimumSize {
		return ReasonTransport
	}
	u := header.UDP(l4)
	ulen := int(u.Length())
	if ulen < header.UDPMinimumSize || ulen > len(l4) {
		return ReasonTransport
	}
	// IPv4 allows "no checksum"; IPv6 does not (RFC 8200 §8.1).
	if !p.Trusted && (u.Checksum() != 0 || p.Family == 6) && !checksumValid(p, l4[:ulen]) {
		return ReasonChecksum
	}
	p.CT.Key.SrcPort = u.SourcePort()
	p.CT.Key.DstPort = u.DestinationPort()
	p.Payload = p.L4 + header.UDPMinimumSize
	p.CT.PayloadLen = ulen - header.UDPMinimumSize
	return ReasonNone
}
