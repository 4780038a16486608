package stack

import (
	"context"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/tungate/tungate/conntrack"
	"github.com/tungate/tungate/policy"
	"github.com/tungate/tungate/stack/egress"
	"github.com/tungate/tungate/stack/l7gate"
	"github.com/tungate/tungate/stack/packet"
	"github.com/tungate/tungate/stack/relay"
)

// clientKeepalive probes idle client connections so a vanished client does
// not pin its upstream socket forever.
const clientKeepalive = 60 * time.Second

// handleTCP is the TCP forwarder's handler, run by gVisor on a goroutine
// of its own for each new connection; the Stack adopts that goroutine
// (startFlow) so Run waits for it. The upstream is dialed first, and the
// client's handshake completes only when that succeeded: a refused
// upstream gives the client a RST, a silent one a timeout, as if there
// were no gateway. Flows pending on tls.sni or http.* go to the L7 gate
// after the handshake instead, before anything is dialed.
func (s *Stack) handleTCP(r *tcp.ForwarderRequest) {
	if !s.startFlow() {
		r.Complete(false)
		return
	}
	defer s.wg.Done()

	id := r.ID()
	key := conntrack.KeyFrom(packet.ProtoTCP, packet.AddrPortOf(id.RemoteAddress, id.RemotePort), packet.AddrPortOf(id.LocalAddress, id.LocalPort))
	fl := s.flows.Get(key)
	if fl == nil {
		// The flow left conntrack (flush, eviction) since its SYN was
		// allowed: its packets would go nowhere, so nothing is dialed.
		r.Complete(true)
		return
	}
	// Decide ran at the SYN (it takes limit tokens, so it must not run
	// again): an inspected or pending flow's verdict was kept for this
	// handler in the flow's record.
	armed, inspect := fl.TakeArmed()
	relayCtx, stopRelay := context.WithCancel(s.flowCtx)
	defer stopRelay()
	defer fl.SetRelay(stopRelay)()
	f := s.flowOfKey(&key)

	pending := inspect && armed.Verdict.Pending
	if pending && armed.Verdict.Need&policy.NeedDNS == 0 {
		// tls.sni / http.*: the field comes from the client's first
		// bytes, so the handshake completes before any dial.
		if cc := s.acceptClient(r, relayCtx); cc != nil {
			s.gate.ServePending(relayCtx, cc, &f, key, armed)
		}
		return
	}

	ctx, cancel := context.WithTimeout(s.flowCtx, s.egress.DialTimeout.D())
	up, err := s.upstream.DialTCP(ctx, key.DstAddrPort())
	cancel()
	if err != nil {
		if noRoute, ok := egress.IsUnreachable(err); ok {
			// As without a gateway: the client learns at once that the
			// destination cannot be reached, instead of timing out.
			r.Complete(false)
			s.answerUnreachable(key, noRoute)
			return
		}
		r.Complete(egress.IsRefused(err))
		return
	}
	cc := s.acceptClient(r, relayCtx)
	if cc == nil {
		relay.Upstream(up).Abort()
		return
	}
	if pending {
		// dns.qname over TCP: decided message by message.
		s.gate.ServeDNSTCP(relayCtx, cc, relay.Upstream(up), &f, key, armed)
		return
	}
	var ins relay.Inspector
	var onHit relay.HitHandler
	if inspect {
		ins, onHit = s.gate.Inspection(armed.Policy, &f, armed.Verdict, key, cc)
	}
	relay.TCP(relayCtx, cc, relay.Upstream(up), ins, onHit)
}

// answerUnreachable sends the client of the TCP flow key an ICMP host (or,
// with noRoute, network) unreachable about its SYN, rebuilt from the flow's
// key and the sequence number conntrack tracked for it.
func (s *Stack) answerUnreachable(key conntrack.Key, noRoute bool) {
	fi, ok := s.ct.Lookup(key)
	if !ok {
		return
	}
	kind := packet.HostUnreachable
	if noRoute {
		kind = packet.NetUnreachable
	}
	// The SYN counts one in the sender's sequence space: the tracker's end
	// is its sequence number plus one.
	s.relayError(key, fi.Window[conntrack.DirOriginal].End-1, kind)
}

// relayError tells the client of flow key about an error the upstream
// side met, as an ICMP error about a packet rebuilt from the key, within
// routers' ICMP budget (Linux: 1,000 a second, bursts of 50).
func (s *Stack) relayError(key conntrack.Key, seq uint32, kind packet.Unreachable) {
	if !s.icmpBudget.Take() {
		s.ctr.icmpLimited.Add(1)
		return
	}
	out := make([]byte, packet.IPv6MinMTU)
	if n := packet.RebuiltUnreachable(out, &key, seq, kind); n > 0 {
		s.ctr.unreachables.Add(1)
		s.writeOne(out[:n], &key)
	}
}

// acceptClient completes the client's handshake; nil when the client gave
// up or reset during it.
func (s *Stack) acceptClient(r *tcp.ForwarderRequest, ctx context.Context) *l7gate.ClientConn {
	var wq waiter.Queue
	ep, terr := r.CreateEndpoint(&wq)
	if terr != nil {
		r.Complete(true)
		return nil
	}
	r.Complete(false)
	ep.SocketOptions().SetKeepAlive(true)
	idle := tcpip.KeepaliveIdleOption(clientKeepalive)
	_ = ep.SetSockOpt(&idle)
	intvl := tcpip.KeepaliveIntervalOption(clientKeepalive / 4)
	_ = ep.SetSockOpt(&intvl)
	return l7gate.NewClientConn(gonet.NewTCPConn(&wq, ep), ep, ctx)
}
