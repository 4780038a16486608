package packet

import (
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tungate/tungate/conntrack"
)

// SYNUnreachable writes into out the ICMP destination unreachable error of
// the given kind about the SYN a client sent on the flow with
// original-direction key k and initial sequence number seq, and returns
// its length (0 when k is not TCP). It is for a dial that failed after
// the SYN itself was gone: the error quotes a SYN rebuilt from the key, and
// the client's stack matches it by addresses, ports and sequence number
// (RFC 5927 §4.1), which is all a rebuilt one must get right. out must
// hold IPv6MinMTU bytes.
func SYNUnreachable(out []byte, k *conntrack.Key, seq uint32, kind Unreachable) int {
	if k.Proto != ProtoTCP {
		return 0
	}
	var syn [header.IPv6MinimumSize + header.TCPMinimumSize]byte
	ipLen := ipHeaderLen(k.Family)
	total := ipLen + header.TCPMinimumSize
	src, dst := tcpipAddr(&k.Src, k.Family), tcpipAddr(&k.Dst, k.Family)
	encodeIP(syn[:], k.Family, src, dst, ProtoTCP, total)
	t := header.TCP(syn[ipLen:total])
	t.Encode(&header.TCPFields{SrcPort: k.SrcPort, DstPort: k.DstPort, SeqNum: seq,
		DataOffset: header.TCPMinimumSize, Flags: header.TCPFlagSyn, WindowSize: 65535})
	t.SetChecksum(^transportSum(ProtoTCP, src, dst, t))
	var p Parsed
	if Parse(syn[:total], &p) != ReasonNone {
		return 0
	}
	return ICMPError(out, syn[:total], &p, kind)
}
