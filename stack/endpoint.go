package stack

import (
	"sync"
	"sync/atomic"

	"github.com/tungate/tungate/tun"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	gstack "gvisor.dev/gvisor/pkg/tcpip/stack"
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
	d.DeliverNetworkPacket(proto, pkt)
	pkt.DecRef()
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
