package stack

import (
	"sync"

	"gvisor.dev/gvisor/pkg/tcpip"
	gstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/tungate/tungate/conntrack"
	"github.com/tungate/tungate/stack/packet"
	"github.com/tungate/tungate/tun"
)

// txBatchSize is how many packets one Device.Write carries at most.
const txBatchSize = 64

// txBatch is a reusable set of packet buffers for writing to the TUN, so
// the outbound path allocates nothing per packet once the pool is warm.
type txBatch struct {
	mem  []byte              // txBatchSize buffers of mtu bytes, back to back
	mtu  int                 //
	out  [txBatchSize][]byte // the packets of this batch, views into mem
	n    int
	hash uint32 // flow hash of the batch's first packet: picks the device
}

func (t *txBatch) slot(i int) []byte {
	if i >= txBatchSize {
		return nil
	}
	return t.mem[i*t.mtu : (i+1)*t.mtu]
}

func (t *txBatch) add(size int) {
	t.out[t.n] = t.slot(t.n)[:size]
	t.n++
}

func (t *txBatch) full() bool { return t.n == txBatchSize }

func (s *Stack) getTx() *txBatch {
	if v := s.txPool.Get(); v != nil {
		t := v.(*txBatch)
		t.n = 0
		return t
	}
	return &txBatch{mem: make([]byte, txBatchSize*s.mtu), mtu: s.mtu}
}

func (s *Stack) putTx(t *txBatch) { s.txPool.Put(t) }

// flushTx writes the batch to one device: a batch normally holds one
// endpoint's output, and one queue keeps its packets in order.
func (s *Stack) flushTx(t *txBatch) {
	if t.n == 0 {
		return
	}
	d := s.devs[int(t.hash%uint32(len(s.devs)))]
	n, err := d.Write(t.out[:t.n], 0)
	for i := range n {
		s.ctr.txBytes.Add(uint64(len(t.out[i])))
	}
	s.ctr.txPackets.Add(uint64(n))
	if err != nil {
		s.ctr.txErrors.Add(uint64(t.n - n))
	}
	t.n = 0
}

// writeOne writes one synthesized packet (reject, echo reply), which must
// be at most mtu bytes.
func (s *Stack) writeOne(b []byte, k *conntrack.Key) {
	t := s.getTx()
	defer s.putTx(t)
	t.hash = packet.FlowHash(k)
	if len(b) > s.mtu {
		s.writeFragments(t, b)
		return
	}
	copy(t.slot(0), b)
	t.add(len(b))
	s.flushTx(t)
}

// writeFragments writes a reply the gateway originated that is larger than
// the MTU (an echo reply to a large ping) as fragments. Such replies are
// rare, so the scratch buffer each fragment is cut in is allocated here.
func (s *Stack) writeFragments(t *txBatch, b []byte) {
	ok := packet.Fragment(b, s.mtu, s.fragID.Add(1), make([]byte, s.mtu), func(f []byte) {
		if t.full() {
			s.flushTx(t)
		}
		copy(t.slot(t.n), f)
		t.add(len(f))
	})
	if !ok {
		s.ctr.txErrors.Add(1)
		return
	}
	s.flushTx(t)
}

// gsoMaxSize is the largest TCP superpacket gVisor hands an offload
// device: gVisor keeps its payload a header allowance below it, so the
// IPv4 total length stays within 16 bits.
const gsoMaxSize = 65000

// offloadBufPool holds write buffers for offload devices: a virtio-net
// header and one packet of up to tun.GSOMaxSize bytes.
var offloadBufPool = sync.Pool{New: func() any {
	b := make([]byte, tun.VirtioNetHdrLen+tun.GSOMaxSize)
	return &b
}}

// writeOffload writes gVisor's output to offload devices, one write per
// packet (a TUN takes one packet per write(2) either way): a TCP packet
// goes with its partial checksum and, when longer than one segment, as a
// superpacket the kernel segments.
func (e *linkEndpoint) writeOffload(pkts gstack.PacketBufferList) (int, tcpip.Error) {
	bp := offloadBufPool.Get().(*[]byte)
	defer offloadBufPool.Put(bp)
	buf := *bp
	for _, pkt := range pkts.AsSlice() {
		size := pkt.Size()
		if size > len(buf)-tun.VirtioNetHdrLen {
			e.s.ctr.txErrors.Add(1)
			continue
		}
		out := buf[:tun.VirtioNetHdrLen+size]
		if copyPacket(out[tun.VirtioNetHdrLen:], pkt) != size {
			e.s.ctr.txErrors.Add(1)
			continue
		}
		h, ok := e.s.trackOutbound(out[tun.VirtioNetHdrLen:])
		if !ok {
			continue
		}
		vh := vnetHeader(pkt)
		vh.Encode(out)
		if err := e.offload[int(h%uint32(len(e.offload)))].WriteOffload(out); err != nil {
			e.s.ctr.txErrors.Add(1)
			continue
		}
		e.s.ctr.txPackets.Add(1)
		e.s.ctr.txBytes.Add(uint64(size))
	}
	return pkts.Len(), nil
}

// vnetHeader describes pkt to the kernel: gVisor's GSO options say whether
// its checksum is partial (the pseudo-header sum, to be completed over
// the TCP segment) and whether it is to be cut into MSS-sized segments.
func vnetHeader(pkt *gstack.PacketBuffer) tun.VirtioNetHdr {
	var h tun.VirtioNetHdr
	g := &pkt.GSOOptions
	if g.Type != gstack.GSOTCPv4 && g.Type != gstack.GSOTCPv6 {
		return h
	}
	if g.NeedsCsum {
		h.Flags = tun.VirtioNetHdrFNeedsCsum
		h.CsumStart = uint16(len(pkt.NetworkHeader().Slice()))
		h.CsumOffset = g.CsumOffset
	}
	if pkt.Data().Size() > int(g.MSS) {
		h.GSOType = tun.VirtioNetHdrGSOTCPv4
		if g.Type == gstack.GSOTCPv6 {
			h.GSOType = tun.VirtioNetHdrGSOTCPv6
		}
		h.GSOSize = g.MSS
		h.HdrLen = uint16(pkt.HeaderSize())
	}
	return h
}

// copyPacket copies pkt's bytes into b and returns how many it copied.
func copyPacket(b []byte, pkt *gstack.PacketBuffer) int {
	vl, off := pkt.AsViewList()
	w := 0
	for v := vl.Front(); v != nil && w < len(b); v = v.Next() {
		sl := v.AsSlice()
		if off >= len(sl) {
			off -= len(sl)
			continue
		}
		w += copy(b[w:], sl[off:])
		off = 0
	}
	return w
}

// GSOMaxSize implements gstack.GSOEndpoint.
func (e *linkEndpoint) GSOMaxSize() uint32 {
	if e.offload == nil {
		return 0
	}
	return gsoMaxSize
}

// SupportedGSO implements gstack.GSOEndpoint: host GSO when every device
// is an offload queue.
func (e *linkEndpoint) SupportedGSO() gstack.SupportedGSO {
	if e.offload == nil {
		return gstack.GSONotSupported
	}
	return gstack.HostGSOSupported
}
