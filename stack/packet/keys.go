package packet

import (
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip"

	"github.com/tungate/tungate/conntrack"
)

// tcpipAddr converts a conntrack address for gVisor's header encoders
// and checksums.
func tcpipAddr(a *[16]byte, family uint8) tcpip.Address {
	if family == 4 {
		return tcpip.AddrFrom4([4]byte(a[:4]))
	}
	return tcpip.AddrFrom16(*a)
}

// AddrPortOf converts a gVisor address and port.
func AddrPortOf(a tcpip.Address, port uint16) netip.AddrPort {
	var ip netip.Addr
	if a.Len() == 4 {
		ip = netip.AddrFrom4(a.As4())
	} else {
		ip = netip.AddrFrom16(a.As16())
	}
	return netip.AddrPortFrom(ip, port)
}

// FlowHash spreads flows over devices and shards. It is symmetric, so
// both directions of a flow choose the same queue.
func FlowHash(k *conntrack.Key) uint32 {
	var h uint32
	for i := 0; i < 16; i += 4 {
		h ^= uint32(k.Src[i])<<24 | uint32(k.Src[i+1])<<16 | uint32(k.Src[i+2])<<8 | uint32(k.Src[i+3])
		h ^= uint32(k.Dst[i])<<24 | uint32(k.Dst[i+1])<<16 | uint32(k.Dst[i+2])<<8 | uint32(k.Dst[i+3])
	}
	h ^= uint32(k.SrcPort ^ k.DstPort)
	// Mix, so flows differing in a few bits still land on different
	// queues.
	h ^= h >> 16
	h *= 0x45d9f3b
	h ^= h >> 16
	return h
}
