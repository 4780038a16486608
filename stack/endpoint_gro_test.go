package stack

import (
	"encoding/binary"
	"testing"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	gstack "gvisor.dev/gvisor/pkg/tcpip/stack"
)

// sizeDispatcher records the size of every packet delivered to it.
type sizeDispatcher struct{ sizes []int }

func (d *sizeDispatcher) DeliverNetworkPacket(_ tcpip.NetworkProtocolNumber, pkt *gstack.PacketBuffer) {
	d.sizes = append(d.sizes, pkt.Data().Size())
}

func (d *sizeDispatcher) DeliverLinkPacket(tcpip.NetworkProtocolNumber, *gstack.PacketBuffer) {}

// tcpSeg4 builds an IPv4 TCP segment of the flow 198.18.1.2:40000 ->
// 198.18.2.2:5201 with payload bytes at seq.
func tcpSeg4(seq uint32, payload int, flags uint8) []byte {
	b := make([]byte, 20+20+payload)
	ip := header.IPv4(b)
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(b)), TTL: 64, Protocol: uint8(header.TCPProtocolNumber),
		SrcAddr: tcpip.AddrFrom4([4]byte{198, 18, 1, 2}), DstAddr: tcpip.AddrFrom4([4]byte{198, 18, 2, 2})})
	ip.SetChecksum(^ip.CalculateChecksum())
	t := header.TCP(b[20:])
	t.Encode(&header.TCPFields{SrcPort: 40000, DstPort: 5201, SeqNum: seq, AckNum: 1, DataOffset: 20, Flags: header.TCPFlags(flags), WindowSize: 1000})
	for i := range payload {
		b[40+i] = byte(i)
	}
	sum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, ip.SourceAddress(), ip.DestinationAddress(), uint16(20+payload))
	binary.BigEndian.PutUint16(b[36:], ^checksum.Checksum(b[20:], sum))
	return b
}

func inject4(c *rxCoalescer, d *sizeDispatcher, b []byte) {
	pkt := gstack.NewPacketBuffer(gstack.PacketBufferOptions{Payload: buffer.MakeWithData(b)})
	if !c.enqueue(d, header.IPv4ProtocolNumber, pkt, b, 4) {
		d.DeliverNetworkPacket(header.IPv4ProtocolNumber, pkt)
	}
	pkt.DecRef()
}

func TestRxCoalescerMergesSegmentsOfABatch(t *testing.T) {
	c := newRxCoalescer(2)
	d := &sizeDispatcher{}
	// Not armed yet (no reader flushes): packets go straight through.
	inject4(c, d, tcpSeg4(1, 1000, uint8(header.TCPFlagAck)))
	if len(d.sizes) != 1 {
		t.Fatalf("unarmed coalescer held a packet: delivered %v", d.sizes)
	}
	c.flush() // arms
	d.sizes = nil
	const segs, mss = 10, 1000
	for i := range segs {
		inject4(c, d, tcpSeg4(uint32(1+i*mss), mss, uint8(header.TCPFlagAck)))
	}
	if len(d.sizes) != 0 {
		t.Fatalf("delivered before the flush: %v", d.sizes)
	}
	c.flush()
	if len(d.sizes) != 1 || d.sizes[0] != 40+segs*mss {
		t.Fatalf("delivered %v, want one %d-byte packet", d.sizes, 40+segs*mss)
	}
}

func TestRxCoalescerFlushesEveryHeldFlow(t *testing.T) {
	c := newRxCoalescer(1)
	c.flush()
	d := &sizeDispatcher{}
	// More flows than one GRO bucket holds packets: all must come out on
	// one flush.
	const flows = 40
	for f := range flows {
		b := tcpSeg4(1, 500, uint8(header.TCPFlagAck))
		binary.BigEndian.PutUint16(b[20:], uint16(30000+f))
		header.TCP(b[20:]).SetChecksum(0)
		sum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, header.IPv4(b).SourceAddress(), header.IPv4(b).DestinationAddress(), uint16(len(b)-20))
		binary.BigEndian.PutUint16(b[36:], ^checksum.Checksum(b[20:], sum))
		inject4(c, d, b)
	}
	c.flush()
	if len(d.sizes) != flows {
		t.Fatalf("delivered %d packets after the flush, want %d", len(d.sizes), flows)
	}
}

func TestRxCoalescerPassesNonTCP(t *testing.T) {
	c := newRxCoalescer(1)
	c.flush()
	d := &sizeDispatcher{}
	b := tcpSeg4(1, 100, uint8(header.TCPFlagAck))
	b[9] = uint8(header.UDPProtocolNumber)
	inject4(c, d, b)
	if len(d.sizes) != 1 {
		t.Fatalf("a UDP packet was held: delivered %v", d.sizes)
	}
}

func TestRxCoalescerAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("gVisor's GRO reuses packet buffers through sync.Pool, which the race detector empties at random; the guard runs without -race")
	}
	c := newRxCoalescer(1)
	c.flush()
	d := &sizeDispatcher{sizes: make([]int, 0, 4096)}
	segs := make([][]byte, 8)
	for i := range segs {
		segs[i] = tcpSeg4(uint32(1+i*1000), 1000, uint8(header.TCPFlagAck))
	}
	allocs := testing.AllocsPerRun(200, func() {
		for _, b := range segs {
			inject4(c, d, b)
		}
		c.flush()
		d.sizes = d.sizes[:0]
	})
	if allocs > 0 {
		t.Fatalf("%.1f allocations per batch of %d segments", allocs, len(segs))
	}
}
