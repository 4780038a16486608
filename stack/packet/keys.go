package packet

import (
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip"

	"github.com/tungate/tungate/conntrack"
)

// Addr converts a conntrack address of the given family; it does not
// allocate.
func Addr(a *[16]byte, family uint8) netip.Addr {
	if family == 4 {
		return netip.AddrFrom4([4]byte(a[:4]))
	}
	return netip.AddrFrom16(*a)
}

// tcpipAddr is Addr for gVisor's header encoders and checksums.
func tcpipAddr(a *[16]byte, family uint8) tcpip.Address {
	if family == 4 {
		return tcpip.AddrFrom4([4]byte(a[:4]))
	}
	return tcpip.AddrFrom16(*a)
}

// KeyAddr returns the source or destination address of k.
func KeyAddr(k *conntrack.Key, src bool) netip.Addr {
	if src {
		return Addr(&k.Src, k.Family)
	}
	return Addr(&k.Dst, k.Family)
}

// KeySrc is the source address and port of k.
func KeySrc(k *conntrack.Key) netip.AddrPort {
	return netip.AddrPortFrom(Addr(&k.Src, k.Family), k.SrcPort)
}

// KeyDst is the destination address and port of k: for an
// original-direction key, where the flow is really going.
func KeyDst(k *conntrack.Key) netip.AddrPort {
	return netip.AddrPortFrom(Addr(&k.Dst, k.Family), k.DstPort)
}

// KeyOf is the conntrack key of a flow's original direction. An IPv4
// source makes an IPv4 key; dst must be of the same family.
func KeyOf(proto uint8, src, dst netip.AddrPort) conntrack.Key {
	k := conntrack.Key{Proto: proto, SrcPort: src.Port(), DstPort: dst.Port()}
	if src.Addr().Is4() {
		k.Family = 4
		a, b := src.Addr().As4(), dst.Addr().As4()
		copy(k.Src[:], a[:])
		copy(k.Dst[:], b[:])
	} else {
		k.Family = 6
		k.Src, k.Dst = src.Addr().As16(), dst.Addr().As16()
	}
	return k
}

// OrigKey is the conntrack key of the original direction of the flow a
// packet travelling in dir belongs to.
func OrigKey(k *conntrack.Key, dir conntrack.Dir) conntrack.Key {
	if dir == conntrack.DirOriginal {
		return *k
	}
	r := conntrack.Key{Src: k.Dst, Dst: k.Src, Proto: k.Proto, Family: k.Family, SrcPort: k.DstPort, DstPort: k.SrcPort}
	// An echo flow's "source port" is its identifier, the same both ways;
	// there is no destination port.
	if k.Proto == ProtoICMP || k.Proto == ProtoICMPv6 {
		r.SrcPort, r.DstPort = k.SrcPort, 0
	}
	return r
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
