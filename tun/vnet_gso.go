package tun

import (
	"encoding/binary"
	"errors"
	"io"

	csum "gvisor.dev/gvisor/pkg/tcpip/checksum"
)

// The data plane takes whole, checksummed packets of at most MTU bytes, so
// what an offload queue reads is normalised here: a partial checksum is
// completed, and a TCP superpacket (the kernel's GRO or a local TSO send)
// is cut back into the segments it was made of, each with its own headers
// and checksums, as the kernel's own software GSO would have done.

var (
	errSegIP    = errors.New("tun: offload packet is not TCP over IPv4/IPv6")
	errSegShort = errors.New("tun: offload packet truncated")
)

// completeChecksum finishes a VIRTIO_NET_HDR_F_NEEDS_CSUM packet: the field
// at CsumStart+CsumOffset holds the pseudo-header sum, and the one's
// complement sum from CsumStart to the end completes it.
func completeChecksum(pkt []byte, h *VirtioNetHdr) error {
	start := int(h.CsumStart)
	field := start + int(h.CsumOffset)
	if start >= len(pkt) || field+2 > len(pkt) {
		return errVnetCsum
	}
	sum := csum.Checksum(pkt[start:], 0)
	binary.BigEndian.PutUint16(pkt[field:], ^sum)
	return nil
}

// segmenter cuts one TCP superpacket into MSS-sized segments, one per call
// to next, so a Read with fewer buffers than segments resumes where the
// previous one stopped.
type segmenter struct {
	pkt    []byte // the superpacket, IP header first
	l4     int    // offset of the TCP header
	hdrs   int    // l4 + TCP header length: bytes repeated in each segment
	mss    int
	family uint8
	off    int // payload offset of the next segment, from hdrs
}

// reset prepares to segment pkt as described by h.
func (s *segmenter) reset(pkt []byte, h *VirtioNetHdr) error {
	*s = segmenter{}
	if len(pkt) < 1 {
		return errSegShort
	}
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < 20 {
			return errSegShort
		}
		ihl := int(pkt[0]&0x0f) * 4
		if ihl < 20 || pkt[9] != 6 || h.GSOType&^VirtioNetHdrGSOECN != VirtioNetHdrGSOTCPv4 {
			return errSegIP
		}
		s.l4, s.family = ihl, 4
	case 6:
		if len(pkt) < 40 {
			return errSegShort
		}
		if h.GSOType&^VirtioNetHdrGSOECN != VirtioNetHdrGSOTCPv6 {
			return errSegIP
		}
		s.l4, s.family = 40, 6
		if pkt[6] != 6 {
			// Extension headers: only the kernel's checksum start says
			// where TCP begins.
			if h.Flags&VirtioNetHdrFNeedsCsum == 0 || int(h.CsumStart) <= 40 {
				return errSegIP
			}
			s.l4 = int(h.CsumStart)
		}
	default:
		return errSegIP
	}
	if h.Flags&VirtioNetHdrFNeedsCsum != 0 && (int(h.CsumStart) != s.l4 || h.CsumOffset != 16) {
		return errVnetCsum
	}
	if len(pkt) < s.l4+20 {
		return errSegShort
	}
	thl := int(pkt[s.l4+12]>>4) * 4
	if thl < 20 || len(pkt) < s.l4+thl {
		return errSegShort
	}
	s.pkt, s.hdrs, s.mss = pkt, s.l4+thl, int(h.GSOSize)
	if s.mss == 0 {
		return errVnetGSO
	}
	return nil
}

// done reports whether every segment has been produced.
func (s *segmenter) done() bool { return s.pkt == nil || s.hdrs+s.off >= len(s.pkt) }

// next writes the next segment into out and returns its length. An out too
// small for it is io.ErrShortBuffer, and the segment is skipped.
func (s *segmenter) next(out []byte) (int, error) {
	payload := len(s.pkt) - s.hdrs
	seg := min(s.mss, payload-s.off)
	i := s.off / s.mss
	first, last := s.off == 0, s.off+seg >= payload
	start := s.hdrs + s.off
	s.off += seg
	n := s.hdrs + seg
	if len(out) < n {
		return 0, io.ErrShortBuffer
	}
	copy(out, s.pkt[:s.hdrs])
	copy(out[s.hdrs:], s.pkt[start:start+seg])

	ip := out[:s.l4]
	if s.family == 4 {
		binary.BigEndian.PutUint16(ip[2:], uint16(n))
		id := binary.BigEndian.Uint16(ip[4:])
		binary.BigEndian.PutUint16(ip[4:], id+uint16(i))
		ip[10], ip[11] = 0, 0
		binary.BigEndian.PutUint16(ip[10:], ^csum.Checksum(ip, 0))
	} else {
		binary.BigEndian.PutUint16(ip[4:], uint16(n-40))
	}
	tcp := out[s.l4:n]
	seq := binary.BigEndian.Uint32(tcp[4:])
	binary.BigEndian.PutUint32(tcp[4:], seq+uint32(s.off-seg))
	const fin, psh, cwr = 0x01, 0x08, 0x80
	if !last {
		tcp[13] &^= fin | psh
	}
	if !first {
		tcp[13] &^= cwr
	}
	tcp[16], tcp[17] = 0, 0
	sum := pseudoSum(out, s.family, len(tcp))
	binary.BigEndian.PutUint16(tcp[16:], ^csum.Checksum(tcp, sum))
	return n, nil
}

// pseudoSum is the TCP/UDP pseudo-header sum of the IP packet b for an l4
// of l4Len bytes (protocol fixed to TCP).
func pseudoSum(b []byte, family uint8, l4Len int) uint16 {
	var sum uint16
	if family == 4 {
		sum = csum.Checksum(b[12:20], 0)
	} else {
		sum = csum.Checksum(b[8:40], 0)
	}
	sum = csum.Combine(sum, 6)
	return csum.Combine(sum, uint16(l4Len))
}
