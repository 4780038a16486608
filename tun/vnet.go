package tun

import (
	"encoding/binary"
	"errors"
)

// VirtioNetHdrLen is the size of struct virtio_net_hdr, the header an
// offload-capable TUN puts in front of every packet (TUNSETVNETHDRSZ).
const VirtioNetHdrLen = 10

// Flags and GSO types of struct virtio_net_hdr (linux/virtio_net.h).
const (
	VirtioNetHdrFNeedsCsum = 1 // checksum from CsumStart to the end, stored at CsumStart+CsumOffset, is still to be done
	VirtioNetHdrFDataValid = 2 // the kernel already validated the checksum

	VirtioNetHdrGSONone  = 0
	VirtioNetHdrGSOTCPv4 = 1
	VirtioNetHdrGSOUDP   = 3
	VirtioNetHdrGSOTCPv6 = 4
	VirtioNetHdrGSOUDPL4 = 5
	VirtioNetHdrGSOECN   = 0x80 // flag bit on top of a TCP GSO type
)

// VirtioNetHdr is struct virtio_net_hdr. The TUN driver uses the host's
// byte order for a legacy header unless TUNSETVNETBE says otherwise;
// tungate never sets that, and runs on little-endian hosts, so the fields
// are little-endian on the wire.
type VirtioNetHdr struct {
	Flags      uint8
	GSOType    uint8
	HdrLen     uint16 // length of the headers to repeat in front of each segment (a hint)
	GSOSize    uint16 // payload bytes per segment
	CsumStart  uint16 // offset from the start of the IP header
	CsumOffset uint16 // offset of the checksum field from CsumStart
}

var (
	errVnetShort = errors.New("tun: packet shorter than its virtio-net header")
	errVnetFlags = errors.New("tun: unknown virtio-net header flags")
	errVnetGSO   = errors.New("tun: unsupported virtio-net GSO type")
	errVnetCsum  = errors.New("tun: virtio-net checksum offsets past the packet")
)

// Decode reads the header at the start of b. It checks only what the
// header says on its own; offsets are checked against the packet by the
// functions that use them.
func (h *VirtioNetHdr) Decode(b []byte) error {
	if len(b) < VirtioNetHdrLen {
		return errVnetShort
	}
	h.Flags = b[0]
	h.GSOType = b[1]
	h.HdrLen = binary.LittleEndian.Uint16(b[2:])
	h.GSOSize = binary.LittleEndian.Uint16(b[4:])
	h.CsumStart = binary.LittleEndian.Uint16(b[6:])
	h.CsumOffset = binary.LittleEndian.Uint16(b[8:])
	if h.Flags&^(VirtioNetHdrFNeedsCsum|VirtioNetHdrFDataValid) != 0 {
		return errVnetFlags
	}
	switch h.GSOType &^ VirtioNetHdrGSOECN {
	case VirtioNetHdrGSONone:
		if h.GSOType != VirtioNetHdrGSONone {
			return errVnetGSO // ECN without a TCP type
		}
	case VirtioNetHdrGSOTCPv4, VirtioNetHdrGSOTCPv6:
		if h.GSOSize == 0 {
			return errVnetGSO
		}
	default:
		return errVnetGSO
	}
	return nil
}

// Encode writes the header into b[:VirtioNetHdrLen].
func (h *VirtioNetHdr) Encode(b []byte) {
	_ = b[VirtioNetHdrLen-1]
	b[0] = h.Flags
	b[1] = h.GSOType
	binary.LittleEndian.PutUint16(b[2:], h.HdrLen)
	binary.LittleEndian.PutUint16(b[4:], h.GSOSize)
	binary.LittleEndian.PutUint16(b[6:], h.CsumStart)
	binary.LittleEndian.PutUint16(b[8:], h.CsumOffset)
}

// OffloadWriter is implemented by queues opened with offload: they take
// packets whose virtio-net header the caller built, so a TCP packet of up
// to GSOMaxSize bytes with a partial checksum goes out in one write and
// the kernel segments it.
type OffloadWriter interface {
	// WriteOffload writes b[VirtioNetHdrLen:] as one packet described by
	// the header in b[:VirtioNetHdrLen]. It is safe for concurrent use.
	WriteOffload(b []byte) error
	// GSOMaxSize is the largest packet WriteOffload accepts, header
	// excluded.
	GSOMaxSize() int
}

// GSOMaxSize bounds packets handed to an offload queue either way: the
// IPv4 total length field, which TSO packets still fill in.
const GSOMaxSize = 65535
