package stack

import (
	"context"
	"net"

	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
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
	client := addrPortOf(id.RemoteAddress, id.RemotePort)
	dst := addrPortOf(id.LocalAddress, id.LocalPort)

	var wq waiter.Queue
	ep, terr := r.CreateEndpoint(&wq)
	if terr != nil {
		s.flows.Done()
		s.log.Debug("udp endpoint", "src", client, "dst", dst, "err", terr.String())
		return true
	}
	// Bound the flow's queue in the gateway (see defaultUDPReceiveBuffer).
	ep.SocketOptions().SetReceiveBufferSize(int64(s.cfg.UDPReceiveBuffer), true)
	conn := gonet.NewUDPConn(&wq, ep)
	key := keyOf(protoUDP, client, dst)
	// A flow pending on dns.qname keeps its verdict in the L7 table for
	// its whole life: this handler runs again for the same flow after an
	// idle timeout, and every query must be decided each time.
	var clientSide net.Conn = conn
	dns, isDNS := s.l7.dnsVerdict(key)
	if isDNS {
		clientSide = &dnsConn{Conn: conn, d: s.newDNSFlow(key, dns)}
		s.l7.start(key)
	}
	relayCtx, stopRelay := context.WithCancel(s.flowCtx)
	unregister := s.flowReg.register(key, stopRelay)
	// Owned by the Stack: ends when the relay went idle, failed, or its
	// context was cancelled (teardown, flush, recheck).
	go func() {
		defer s.flows.Done()
		defer stopRelay()
		defer unregister()
		if isDNS {
			defer s.l7.stop(key)
		}
		ctx, cancel := context.WithTimeout(relayCtx, s.egress.DialTimeout.D())
		up, err := s.dialUDP(ctx, dst)
		cancel()
		if err != nil {
			s.ctr.udpDialFailures.Add(1)
			_ = conn.Close()
			return
		}
		relayUDP(relayCtx, clientSide, up, s.cfg.UDPIdleTimeout.D())
		_ = conn.Close()
		_ = up.Close()
	}()
	return true
}
