package reassembly

import (
	"encoding/binary"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

const (
	ipv4MoreFragments = 0x2000
	ipv4OffsetMask    = 0x1fff
)

// parseIPv4 takes b as an IPv4 fragment. The caller has checked the
// header checksum; lengths are checked again because Add must hold up on
// anything.
func parseIPv4(b []byte, f *fragment) Reason {
	if len(b) < ipv4HdrMin {
		return ReasonMalformed
	}
	ip := header.IPv4(b)
	ihl, total := int(ip.HeaderLength()), int(ip.TotalLength())
	if ihl < ipv4HdrMin || total < ihl || total > len(b) {
		return ReasonMalformed
	}
	fo := binary.BigEndian.Uint16(b[6:])
	*f = fragment{
		off:     int(fo&ipv4OffsetMask) * 8,
		more:    fo&ipv4MoreFragments != 0,
		payload: b[ihl:total],
		hdr:     b[:ihl],
		ecn:     b[1] & 3,
	}
	if !f.more && f.off == 0 {
		return ReasonMalformed // a whole datagram, not a fragment
	}
	f.key.proto = ip.Protocol()
	f.key.id = uint32(ip.ID())
	copy(f.key.src[:], ip.SourceAddressSlice())
	copy(f.key.dst[:], ip.DestinationAddressSlice())
	if r := checkLength(f); r != ReasonNone {
		return r
	}
	// Even the smallest header leaves 65,515 bytes of data (RFC 791); the
	// first fragment's real header length is checked against the datagram.
	if f.end() > maxIPPayload-ipv4HdrMin {
		return ReasonTooBig
	}
	switch {
	case f.key.proto == protoTCP && f.off == 8:
		return ReasonTinyFirst // RFC 1858 §3.2: it would overwrite the TCP flags
	case f.off == 0 && len(f.payload) < minUpperHeader(f.key.proto, false):
		return ReasonTinyFirst
	}
	return ReasonNone
}
