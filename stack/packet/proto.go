package packet

import "gvisor.dev/gvisor/pkg/tcpip/header"

// IANA protocol numbers the data plane handles.
const (
	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoICMPv6 = 58
)

// TCP header flag bits (RFC 9293 §3.1), as conntrack.Packet.TCPFlags
// holds them.
const (
	TCPFin = uint8(header.TCPFlagFin)
	TCPSyn = uint8(header.TCPFlagSyn)
	TCPRst = uint8(header.TCPFlagRst)
	TCPPsh = uint8(header.TCPFlagPsh)
	TCPAck = uint8(header.TCPFlagAck)
	TCPUrg = uint8(header.TCPFlagUrg)
)
