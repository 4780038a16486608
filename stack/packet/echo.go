package packet

import (
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tungate/tungate/conntrack"
)

// EchoSeq is the sequence number of the echo message in b that p
// describes. ICMPv4 and ICMPv6 echoes share their layout.
func (p *Parsed) EchoSeq(b []byte) uint16 { return header.ICMPv4(b[p.L4:]).Sequence() }

// EchoReply writes into out the echo reply the client would have
// received from the destination of the echo flow k: source the original
// destination, same identifier, sequence and payload. It returns the
// reply's length; out must hold the IP header, 8 bytes and the payload.
func EchoReply(out []byte, family uint8, k *conntrack.Key, seq uint16, payload []byte) int {
	ipLen := ipHeaderLen(family)
	total := ipLen + header.ICMPv4MinimumSize + len(payload)
	src, dst := tcpipAddr(&k.Dst, family), tcpipAddr(&k.Src, family)
	m := out[ipLen:total]
	copy(m[header.ICMPv4MinimumSize:], payload)
	proto, typ := uint8(ProtoICMP), uint8(header.ICMPv4EchoReply)
	if family == 6 {
		proto, typ = ProtoICMPv6, uint8(header.ICMPv6EchoReply)
	}
	encodeIP(out, family, src, dst, proto, total)
	// ICMPv4 and ICMPv6 echoes share their layout (type, code, checksum,
	// identifier, sequence), so one accessor writes both.
	h := header.ICMPv4(m)
	h.SetType(header.ICMPv4Type(typ))
	h.SetCode(0)
	h.SetChecksum(0)
	h.SetIdent(k.SrcPort)
	h.SetSequence(seq)
	h.SetChecksum(^transportSum(proto, src, dst, m))
	return total
}
