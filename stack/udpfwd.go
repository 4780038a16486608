package stack

import (
	"context"
	"net"

	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/tungate/tungate/conntrack"
	"github.com/tungate/tungate/stack/packet"
	"github.com/tungate/tungate/stack/relay"
)

// handleUDP is the UDP forwarder's handler. gVisor calls it on the reader
// goroutine that injected the flow's first packet (and again after an idle
// timeout ended the previous endpoint), so it must not block: it creates
// the client endpoint (which queues the datagram) and leaves the dial and
// relay to a flow goroutine.
func (s *Stack) handleUDP(r *udp.ForwarderRequest) bool {
	if !s.startFlow() {
		return true // shutting down: drop silently
	}
	id := r.ID()
	client := packet.AddrPortOf(id.RemoteAddress, id.RemotePort)
	dst := packet.AddrPortOf(id.LocalAddress, id.LocalPort)
	key := conntrack.KeyFrom(packet.ProtoUDP, client, dst)
	fl := s.flows.Get(key)
	if fl == nil {
		// The flow left conntrack since its datagram was allowed.
		s.wg.Done()
		return true
	}

	var wq waiter.Queue
	ep, terr := r.CreateEndpoint(&wq)
	if terr != nil {
		s.wg.Done()
		s.log.Debug("udp endpoint", "src", client, "dst", dst, "err", terr.String())
		return true
	}
	// Bound the flow's queue in the gateway (see defaultUDPReceiveBuffer).
	ep.SocketOptions().SetReceiveBufferSize(int64(s.cfg.UDPReceiveBuffer), true)
	conn := gonet.NewUDPConn(&wq, ep)
	// A flow pending on dns.qname keeps its verdict in its record for its
	// whole life: this handler runs again for the same flow after an idle
	// timeout, and every query must be decided each time.
	var clientSide net.Conn = conn
	if dns, ok := fl.DNSVerdict(); ok {
		f := s.flowOfKey(&key)
		clientSide = s.gate.DNSConn(conn, &f, key, dns)
	}
	relayCtx, stopRelay := context.WithCancel(s.flowCtx)
	unregister := fl.SetRelay(stopRelay)
	// Owned by the Stack: ends when the relay went idle, failed, or its
	// context was cancelled (teardown, flush, recheck).
	go func() {
		defer s.wg.Done()
		defer stopRelay()
		defer unregister()
		ctx, cancel := context.WithTimeout(relayCtx, s.egress.DialTimeout.D())
		up, err := s.dialUDP(ctx, dst)
		cancel()
		if err != nil {
			s.ctr.udpDialFailures.Add(1)
			_ = conn.Close()
			return
		}
		relay.UDP(relayCtx, clientSide, up, s.cfg.UDPIdleTimeout.D(), udpRefusals{s, key})
		_ = conn.Close()
		_ = up.Close()
	}()
	return true
}

// udpRefusals passes an upstream port unreachable on to the client, from
// the server's address as the server sent it (relay.Refusals).
type udpRefusals struct {
	s   *Stack
	key conntrack.Key
}

func (u udpRefusals) OnRefused() { u.s.relayError(u.key, 0, packet.PortUnreachable) }
