package stack

import (
	"sync"
	"sync/atomic"

	"github.com/tungate/tungate/tun"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	gstack "gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/stack/gro"
)

// linkEndpoint connects gVisor to the TUN devices. Inbound packets do not
// come through it on their own: the Stack's readers run the filter hook and
// call inject for what may pass. Outbound packets (WritePackets) are
// serialized, tracked in conntrack as reply traffic, and written to a
// device.
type linkEndpoint struct {
	s   *Stack
	mtu atomic.Uint32
	// offload is set when every device takes virtio-net headers
	// (tun.OffloadWriter): gVisor then hands over TCP superpackets with
	// partial checksums (host GSO) and the kernel segments them.
	offload []tun.OffloadWriter
	// rx coalesces the segments an offload queue cut from one superpacket
	// back into one before gVisor's TCP sees them; nil without offload.
	rx *rxCoalescer

	mu         sync.RWMutex // guards dispatcher
	dispatcher gstack.NetworkDispatcher
}

var _ gstack.LinkEndpoint = (*linkEndpoint)(nil)

var _ gstack.GSOEndpoint = (*linkEndpoint)(nil)

func newLinkEndpoint(s *Stack, mtu uint32) *linkEndpoint {
	e := &linkEndpoint{s: s}
	e.mtu.Store(mtu)
	for _, d := range s.devs {
		w, ok := d.(tun.OffloadWriter)
		if !ok {
			e.offload = nil
			break
		}
		e.offload = append(e.offload, w)
	}
	if e.offload != nil {
		e.rx = newRxCoalescer(len(e.offload))
	}
	return e
}

// inject hands one packet that passed the hook to gVisor. The data is
// copied, so the caller may reuse b at once.
func (e *linkEndpoint) inject(b []byte, family uint8) {
	e.mu.RLock()
	d := e.dispatcher
	e.mu.RUnlock()
	if d == nil {
		return
	}
	proto := header.IPv4ProtocolNumber
	if family == 6 {
		proto = header.IPv6ProtocolNumber
	}
	pkt := gstack.NewPacketBuffer(gstack.PacketBufferOptions{Payload: buffer.MakeWithData(b)})
	if e.rx == nil || !e.rx.enqueue(d, proto, pkt, b, family) {
		d.DeliverNetworkPacket(proto, pkt)
	}
	pkt.DecRef()
}

// flushRx hands gVisor what inject held back for coalescing. Each reader
// calls it after handling one Read's packets, so nothing waits longer
// than one batch. Until a reader first calls it, inject holds nothing.
func (e *linkEndpoint) flushRx() {
	if e.rx != nil {
		e.rx.flush()
	}
}

// rxCoalescer is gVisor's GRO over the packets the hook passed: a TCP
// superpacket read from an offload queue arrives as ~45 MSS segments
// (the hook must see real segments: conntrack windows, payload rules),
// and TCP handles them far cheaper as one (one ACK decision, one
// receive-queue entry, one relay wakeup).
type rxCoalescer struct {
	armed  atomic.Bool // set by the first flush: readers flush their batches
	shards []rxShard   // by flow hash, so readers on other queues rarely meet
}

type rxShard struct {
	mu   sync.Mutex // guards g and held
	g    gro.GRO
	held bool // something was enqueued since the last flush
	_    [40]byte
}

func newRxCoalescer(n int) *rxCoalescer {
	c := &rxCoalescer{shards: make([]rxShard, n)}
	for i := range c.shards {
		c.shards[i].g.Init(true)
	}
	return c
}

// enqueue takes a TCP packet into GRO and reports whether it did (pkt
// stays the caller's: GRO takes its own reference). The hook verified the
// checksums, which GRO would otherwise verify again.
func (c *rxCoalescer) enqueue(d gstack.NetworkDispatcher, proto tcpip.NetworkProtocolNumber, pkt *gstack.PacketBuffer, b []byte, family uint8) bool {
	if !c.armed.Load() {
		return false
	}
	var h uint32
	switch {
	case family == 4 && len(b) >= header.IPv4MinimumSize+header.TCPMinimumSize && b[9] == uint8(header.TCPProtocolNumber):
		ihl := int(b[0]&0x0f) * 4
		if len(b) < ihl+4 {
			return false
		}
		h = rxHash(b[12:20], b[ihl:ihl+4])
	case family == 6 && len(b) >= header.IPv6MinimumSize+header.TCPMinimumSize && b[6] == uint8(header.TCPProtocolNumber):
		h = rxHash(b[8:40], b[40:44])
	default:
		return false
	}
	pkt.NetworkProtocolNumber = proto
	pkt.RXChecksumValidated = true
	sh := &c.shards[h%uint32(len(c.shards))]
	sh.mu.Lock()
	sh.g.Dispatcher = d
	sh.g.Enqueue(pkt)
	sh.held = true
	sh.mu.Unlock()
	return true
}

// flush delivers every held packet. gro.GRO.Flush hands over at most one
// packet per bucket (it clears the list entry it walks), so it is called
// as many times as a bucket holds packets.
func (c *rxCoalescer) flush() {
	if !c.armed.Load() {
		c.armed.Store(true)
		return
	}
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		if sh.held {
			for range groBucketSize {
				sh.g.Flush()
			}
			sh.held = false
		}
		sh.mu.Unlock()
	}
}

// groBucketSize is gro's packets per bucket (unexported there).
const groBucketSize = 8

// rxHash picks a shard: GRO only merges packets of one direction of one
// flow, so those are what must meet in a shard.
func rxHash(addrs, ports []byte) uint32 {
	h := uint32(2166136261)
	for _, x := range addrs {
		h = (h ^ uint32(x)) * 16777619
	}
	for _, x := range ports {
		h = (h ^ uint32(x)) * 16777619
	}
	return h
}

// WritePackets serializes, tracks and writes gVisor's output. The caller
// keeps its references to pkts (gVisor DecRefs the list after the call).
func (e *linkEndpoint) WritePackets(pkts gstack.PacketBufferList) (int, tcpip.Error) {
	if e.offload != nil {
		return e.writeOffload(pkts)
	}
	tb := e.s.getTx()
	defer e.s.putTx(tb)
	for _, pkt := range pkts.AsSlice() {
		size := pkt.Size()
		if size > len(tb.slot(tb.n)) {
			e.s.ctr.txErrors.Add(1)
			continue
		}
		buf := tb.slot(tb.n)[:size]
		vl, off := pkt.AsViewList()
		w := 0
		for v := vl.Front(); v != nil && w < size; v = v.Next() {
			sl := v.AsSlice()
			if off >= len(sl) {
				off -= len(sl)
				continue
			}
			w += copy(buf[w:], sl[off:])
			off = 0
		}
		if w != size {
			continue
		}
		h, ok := e.s.trackOutbound(buf)
		if !ok {
			continue
		}
		if tb.n == 0 {
			tb.hash = h
		}
		tb.add(size)
		if tb.full() {
			e.s.flushTx(tb)
		}
	}
	e.s.flushTx(tb)
	// Every packet is accounted for (written, or dropped and counted):
	// gVisor must not retransmit at the link layer.
	return pkts.Len(), nil
}

// MTU implements gstack.LinkEndpoint.
func (e *linkEndpoint) MTU() uint32 { return e.mtu.Load() }

// SetMTU implements gstack.LinkEndpoint.
func (e *linkEndpoint) SetMTU(mtu uint32) { e.mtu.Store(mtu) }

// MaxHeaderLength implements gstack.LinkEndpoint: a TUN has no link header.
func (*linkEndpoint) MaxHeaderLength() uint16 { return 0 }

// LinkAddress implements gstack.LinkEndpoint: a TUN has no link address.
func (*linkEndpoint) LinkAddress() tcpip.LinkAddress { return "" }

// SetLinkAddress implements gstack.LinkEndpoint.
func (*linkEndpoint) SetLinkAddress(tcpip.LinkAddress) {}

// Capabilities implements gstack.LinkEndpoint. The hook verifies every
// checksum before injecting, so gVisor need not verify them again.
func (*linkEndpoint) Capabilities() gstack.LinkEndpointCapabilities {
	return gstack.CapabilityRXChecksumOffload
}

// Attach implements gstack.LinkEndpoint.
func (e *linkEndpoint) Attach(d gstack.NetworkDispatcher) {
	e.mu.Lock()
	e.dispatcher = d
	e.mu.Unlock()
}

// IsAttached implements gstack.LinkEndpoint.
func (e *linkEndpoint) IsAttached() bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.dispatcher != nil
}

// Wait implements gstack.LinkEndpoint: the readers belong to Stack.Run,
// not to the endpoint.
func (*linkEndpoint) Wait() {}

// ARPHardwareType implements gstack.LinkEndpoint.
func (*linkEndpoint) ARPHardwareType() header.ARPHardwareType { return header.ARPHardwareNone }

// AddHeader implements gstack.LinkEndpoint.
func (*linkEndpoint) AddHeader(*gstack.PacketBuffer) {}

// ParseHeader implements gstack.LinkEndpoint.
func (*linkEndpoint) ParseHeader(*gstack.PacketBuffer) bool { return true }

// Close implements gstack.LinkEndpoint; the devices are closed by Run.
func (*linkEndpoint) Close() {}

// SetOnCloseAction implements gstack.LinkEndpoint.
func (*linkEndpoint) SetOnCloseAction(func()) {}
