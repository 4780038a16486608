package packet

import (
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// replyTTL is the TTL / hop limit of packets the gateway synthesizes.
const replyTTL = 64

// IPv6MinMTU bounds ICMPv6 errors: RFC 4443 §2.4 (c) says include as much
// of the offending packet as fits without exceeding the minimum MTU. It is
// also the size of a buffer that holds any reset or ICMP error.
const IPv6MinMTU = 1280

// ipHeaderLen is the length of the IP header the gateway writes: no IPv4
// options, no IPv6 extension headers.
func ipHeaderLen(family uint8) int {
	if family == 4 {
		return header.IPv4MinimumSize
	}
	return header.IPv6MinimumSize
}

// encodeIP writes into out the IP header of a synthesized packet of total
// bytes from src to dst. An IPv4 packet that fits any link (the IPv6
// minimum MTU, 1,280 bytes, is below every real one) carries DF with ID 0:
// it is never fragmented, so its ID identifies nothing (RFC 6864 §4.1). A
// larger one (an echo reply to a large ping) leaves DF clear, so that
// Fragment may cut it for the link.
func encodeIP(out []byte, family uint8, src, dst tcpip.Address, proto uint8, total int) {
	if family == 4 {
		var flags uint8
		if total <= IPv6MinMTU {
			flags = header.IPv4FlagDontFragment
		}
		ip := header.IPv4(out)
		ip.Encode(&header.IPv4Fields{
			TotalLength: uint16(total),
			Flags:       flags,
			TTL:         replyTTL,
			Protocol:    proto,
			SrcAddr:     src,
			DstAddr:     dst,
		})
		ip.SetChecksum(^ip.CalculateChecksum())
		return
	}
	header.IPv6(out).Encode(&header.IPv6Fields{
		PayloadLength:     uint16(total - header.IPv6MinimumSize),
		TransportProtocol: tcpip.TransportProtocolNumber(proto),
		HopLimit:          replyTTL,
		SrcAddr:           src,
		DstAddr:           dst,
	})
}
