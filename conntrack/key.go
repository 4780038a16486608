package conntrack

import "net/netip"

// The key's addresses as netip values, for callers that log, list or
// decide on them. None of these allocate.

// SrcAddr is the key's source address.
func (k *Key) SrcAddr() netip.Addr { return keyAddr(&k.Src, k.Family) }

// DstAddr is the key's destination address.
func (k *Key) DstAddr() netip.Addr { return keyAddr(&k.Dst, k.Family) }

// SrcAddrPort is the key's source address and port (an ICMP echo's
// identifier for echo flows).
func (k *Key) SrcAddrPort() netip.AddrPort { return netip.AddrPortFrom(k.SrcAddr(), k.SrcPort) }

// DstAddrPort is the key's destination address and port.
func (k *Key) DstAddrPort() netip.AddrPort { return netip.AddrPortFrom(k.DstAddr(), k.DstPort) }

// Reply is the key of the flow's other direction.
func (k *Key) Reply() Key { return replyKey(k) }

// Original is the original-direction key of the flow that a packet with
// key k, travelling in dir (as Track reports it), belongs to.
func (k *Key) Original(dir Dir) Key {
	if dir == DirOriginal {
		return *k
	}
	return replyKey(k)
}

// KeyFrom is the key of a packet of protocol proto from src to dst. Both
// must be of one family; an IPv4-mapped IPv6 address counts as IPv6.
func KeyFrom(proto uint8, src, dst netip.AddrPort) Key {
	k := Key{Proto: proto, SrcPort: src.Port(), DstPort: dst.Port()}
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

func keyAddr(a *[16]byte, family uint8) netip.Addr {
	if family == 4 {
		return netip.AddrFrom4([4]byte(a[:4]))
	}
	return netip.AddrFrom16(*a)
}
