package packet

import (
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tungate/tungate/conntrack"
)

// Parsed is what Parse learned about one packet: the conntrack view plus
// the offsets reject and echo synthesis need. It lives on the reader's
// stack and is reused, so filling it allocates nothing.
type Parsed struct {
	CT      conntrack.Packet
	Family  uint8 // 4 or 6
	L4      int   // offset of the transport (or ICMP) header
	Payload int   // offset of the transport payload
	End     int   // IP total length: bytes after it are link padding
	ICMPErr bool  // an ICMP/ICMPv6 error; Quote describes the packet it quotes
	Quote   conntrack.Quote
	EchoReq bool // an ICMP/ICMPv6 echo request
	Trusted bool // gVisor's own output: checksums are known good
}

// Parse checks b as one raw IP packet and fills p. It returns ReasonNone
// when the packet is well formed and of a kind the stack handles, and
// otherwise the reason it must be dropped. It never panics on any input
// (FuzzParse) and allocates nothing.
func Parse(b []byte, p *Parsed) DropReason {
	return parse(b, p, false)
}

// ParseOutbound parses a packet gVisor emitted. It skips checksum
// verification (gVisor just computed them) but keeps every other check, so
// gVisor's own chatter (MLD, neighbour discovery) never reaches the TUN.
func ParseOutbound(b []byte, p *Parsed) DropReason {
	return parse(b, p, true)
}

func parse(b []byte, p *Parsed, trusted bool) DropReason {
	*p = Parsed{Trusted: trusted}
	if len(b) < 1 {
		return ReasonShort
	}
	var r DropReason
	switch header.IPVersion(b) {
	case header.IPv4Version:
		r = parseIPv4(b, p)
	case header.IPv6Version:
		r = parseIPv6(b, p)
	default:
		return ReasonVersion
	}
	if r != ReasonNone {
		return r
	}
	p.CT.Len = p.End
	return parseTransport(b[:p.End], p)
}

func parseIPv4(b []byte, p *Parsed) DropReason {
	if len(b) < header.IPv4MinimumSize {
		return ReasonShort
	}
	ip := header.IPv4(b)
	ihl := int(ip.HeaderLength())
	total := int(ip.TotalLength())
	if ihl < header.IPv4MinimumSize || total < ihl || total > len(b) {
		return ReasonIPHeader
	}
	if !p.Trusted && !ip.IsChecksumValid() {
		return ReasonIPChecksum
	}
	// Fragments are dropped: only a reassembled datagram has the ports and
	// payload policy decides on, and clients behind a TUN with a sane MTU
	// do not fragment TCP. Reassembly is future work.
	if ip.More() || ip.FragmentOffset() != 0 {
		return ReasonFragment
	}
	p.Family = 4
	p.End = total
	p.L4 = ihl
	p.CT.Key.Family = 4
	p.CT.Key.Proto = ip.Protocol()
	copy(p.CT.Key.Src[:4], ip.SourceAddressSlice())
	copy(p.CT.Key.Dst[:4], ip.DestinationAddressSlice())
	return ReasonNone
}
