// Package packettest builds raw IP packets for tests in one line each:
// transport headers, the IP header around them and correct checksums,
// which a test may then break on purpose. It imports nothing of tungate,
// so the packet package's own tests can use it too.
package packettest

import (
	"encoding/binary"
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// IANA protocol numbers, as the builders take them.
const (
	ICMP   = uint8(header.ICMPv4ProtocolNumber)
	TCP    = uint8(header.TCPProtocolNumber)
	UDP    = uint8(header.UDPProtocolNumber)
	ICMPv6 = uint8(header.ICMPv6ProtocolNumber)
)

// TCPHdr is a TCP header (window 65535, no options) followed by payload.
func TCPHdr(sport, dport uint16, seq, ack uint32, flags uint8, payload []byte) []byte {
	b := make([]byte, header.TCPMinimumSize+len(payload))
	header.TCP(b).Encode(&header.TCPFields{
		SrcPort: sport, DstPort: dport, SeqNum: seq, AckNum: ack,
		DataOffset: header.TCPMinimumSize, Flags: header.TCPFlags(flags), WindowSize: 65535,
	})
	copy(b[header.TCPMinimumSize:], payload)
	return b
}

// TCPHdrOpts is TCPHdr with options, padded with NOPs to 4 bytes.
func TCPHdrOpts(sport, dport uint16, seq, ack uint32, flags uint8, opts, payload []byte) []byte {
	pad := (4 - len(opts)%4) % 4
	ol := len(opts) + pad
	b := TCPHdr(sport, dport, seq, ack, flags, make([]byte, ol+len(payload)))
	copy(b[20:], opts)
	for i := range pad {
		b[20+len(opts)+i] = header.TCPOptionNOP
	}
	copy(b[20+ol:], payload)
	b[12] = byte((20+ol)/4) << 4
	return b
}

// UDPHdr is a UDP header followed by payload.
func UDPHdr(sport, dport uint16, payload []byte) []byte {
	b := make([]byte, header.UDPMinimumSize+len(payload))
	header.UDP(b).Encode(&header.UDPFields{SrcPort: sport, DstPort: dport, Length: uint16(len(b))})
	copy(b[header.UDPMinimumSize:], payload)
	return b
}

// EchoHdr is an ICMP (v6: ICMPv6) echo request followed by payload.
func EchoHdr(v6 bool, id, seq uint16, payload []byte) []byte {
	b := make([]byte, 8+len(payload))
	b[0] = uint8(header.ICMPv4Echo)
	if v6 {
		b[0] = uint8(header.ICMPv6EchoRequest)
	}
	binary.BigEndian.PutUint16(b[4:], id)
	binary.BigEndian.PutUint16(b[6:], seq)
	copy(b[8:], payload)
	return b
}

// IP wraps l4 in an IP header from src to dst (TTL 64, DF on IPv4) and
// fills the transport checksum; ICMP becomes ICMPv6 between IPv6
// addresses. Any other proto (an extension header) is left to the caller:
// see FillChecksum.
func IP(src, dst netip.Addr, proto uint8, l4 []byte) []byte {
	family, ipLen := uint8(4), header.IPv4MinimumSize
	if src.Is6() {
		family, ipLen = 6, header.IPv6MinimumSize
	}
	if proto == ICMP && family == 6 {
		proto = ICMPv6
	}
	out := make([]byte, ipLen+len(l4))
	s, d := tcpip.AddrFromSlice(src.AsSlice()), tcpip.AddrFromSlice(dst.AsSlice())
	if family == 4 {
		ip := header.IPv4(out)
		ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(out)), Flags: header.IPv4FlagDontFragment, TTL: 64, Protocol: proto, SrcAddr: s, DstAddr: d})
		ip.SetChecksum(^ip.CalculateChecksum())
	} else {
		header.IPv6(out).Encode(&header.IPv6Fields{PayloadLength: uint16(len(l4)), TransportProtocol: tcpip.TransportProtocolNumber(proto), HopLimit: 64, SrcAddr: s, DstAddr: d})
	}
	copy(out[ipLen:], l4)
	FillChecksum(out, family, ipLen, proto)
	return out
}

// SYN is a TCP SYN (seq 1000) from src to dst.
func SYN(src, dst netip.Addr, sport, dport uint16) []byte {
	return IP(src, dst, TCP, TCPHdr(sport, dport, 1000, 0, uint8(header.TCPFlagSyn), nil))
}

// V6ExtChain is a UDP datagram from src to dst (ports 1 → 53) behind n
// destination options headers.
func V6ExtChain(src, dst netip.Addr, n int) []byte {
	udp := UDPHdr(1, 53, []byte("q"))
	const destOpts = uint8(header.IPv6DestinationOptionsExtHdrIdentifier)
	ext := make([]byte, 0, n*8+len(udp))
	for i := range n {
		next := destOpts
		if i == n-1 {
			next = UDP
		}
		ext = append(ext, next, 0, 1, 4, 0, 0, 0, 0) // a PadN option fills the 8 bytes
	}
	ext = append(ext, udp...)
	b := IP(src, dst, destOpts, ext)
	FillChecksum(b, 6, header.IPv6MinimumSize+n*8, UDP)
	return b
}

// FillChecksum computes the transport checksum of the segment at pkt[l4:]:
// over the pseudo-header for TCP, UDP and ICMPv6, over the message alone
// for ICMPv4. Other protocols are left alone.
func FillChecksum(pkt []byte, family uint8, l4 int, proto uint8) {
	off, ok := map[uint8]int{TCP: 16, UDP: 6, ICMP: 2, ICMPv6: 2}[proto]
	if !ok {
		return
	}
	seg := pkt[l4:]
	seg[off], seg[off+1] = 0, 0
	var sum uint16
	if proto != ICMP {
		src, dst := pkt[12:16], pkt[16:20]
		if family == 6 {
			src, dst = pkt[8:24], pkt[24:40]
		}
		sum = header.PseudoHeaderChecksum(tcpip.TransportProtocolNumber(proto), tcpip.AddrFromSlice(src), tcpip.AddrFromSlice(dst), uint16(len(seg)))
	}
	binary.BigEndian.PutUint16(seg[off:], ^checksum.Checksum(seg, sum))
}
