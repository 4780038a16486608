package packet

import (
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tungate/tungate/conntrack"
)

// RebuiltUnreachable writes into out the ICMP destination unreachable
// error of the given kind about a packet the client sent on the flow with
// original-direction key k, and returns its length (0 for a protocol it
// cannot rebuild). It is for an error learnt after the packet itself was
// gone (a dial that failed, an upstream UDP socket refused): the error
// quotes a packet rebuilt from the key, which the client's stack matches
// by addresses and ports, and for TCP its SYN's sequence number seq (RFC
// 5927 §4.1): all a rebuilt quote must get right. out must hold
// IPv6MinMTU bytes.
func RebuiltUnreachable(out []byte, k *conntrack.Key, seq uint32, kind Unreachable) int {
	var pkt [header.IPv6MinimumSize + header.TCPMinimumSize]byte
	ipLen := ipHeaderLen(k.Family)
	src, dst := tcpipAddr(&k.Src, k.Family), tcpipAddr(&k.Dst, k.Family)
	var total int
	switch k.Proto {
	case ProtoTCP:
		total = ipLen + header.TCPMinimumSize
		t := header.TCP(pkt[ipLen:total])
		t.Encode(&header.TCPFields{SrcPort: k.SrcPort, DstPort: k.DstPort, SeqNum: seq,
			DataOffset: header.TCPMinimumSize, Flags: header.TCPFlagSyn, WindowSize: 65535})
		t.SetChecksum(^transportSum(ProtoTCP, src, dst, t))
	case ProtoUDP:
		total = ipLen + header.UDPMinimumSize
		u := header.UDP(pkt[ipLen:total])
		u.Encode(&header.UDPFields{SrcPort: k.SrcPort, DstPort: k.DstPort, Length: header.UDPMinimumSize})
		u.SetChecksum(^transportSum(ProtoUDP, src, dst, u))
	default:
		return 0
	}
	encodeIP(pkt[:], k.Family, src, dst, k.Proto, total)
	var p Parsed
	if Parse(pkt[:total], &p) != ReasonNone {
		return 0
	}
	return ICMPError(out, pkt[:total], &p, kind)
}
