package stack

import (
	"context"
	"net/netip"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/tungate/tungate/conntrack"
	"github.com/tungate/tungate/policy"
)

// clientKeepalive probes idle client connections so a vanished client does
// not pin its upstream socket forever.
const clientKeepalive = 60 * time.Second

// handleTCP is the TCP forwarder's handler, run by gVisor on a goroutine
// of its own for each new connection; the Stack adopts that goroutine
// (startFlow) so Run waits for it. The upstream is dialed first, and the
// client's handshake completes only when that succeeded: a refused
// upstream gives the client a RST, a silent one a timeout, as if there
// were no gateway.
func (s *Stack) handleTCP(r *tcp.ForwarderRequest) {
	if !s.startFlow() {
		r.Complete(false)
		return
	}
	defer s.flows.Done()

	id := r.ID()
	client := addrPortOf(id.RemoteAddress, id.RemotePort)
	dst := addrPortOf(id.LocalAddress, id.LocalPort)
	key := keyOf(protoTCP, client, dst)

	// The flow was allowed by the policy current at its SYN; deciding
	// again yields the verdict whose payload rules are armed. Should a
	// reload in between have turned it into a refusal, honour that.
	pol := s.pol.Load()
	f := policy.Flow{Proto: protoTCP, Src: client.Addr(), Dst: dst.Addr(), SrcPort: client.Port(), DstPort: dst.Port()}
	v := pol.Decide(&f)
	if v.Action != policy.ActionAllow && pol.Mode() != policy.ModeAudit {
		s.ct.SetVerdict(key, conntrack.Verdict{Action: uint8(v.Action), Rule: v.RuleID})
		r.Complete(v.Action == policy.ActionReject)
		return
	}

	ctx, cancel := context.WithTimeout(s.flowCtx, s.egress.DialTimeout.D())
	up, err := s.dialTCP(ctx, dst)
	cancel()
	if err != nil {
		s.ctr.tcpDialFailures.Add(1)
		r.Complete(IsRefused(err))
		return
	}

	var wq waiter.Queue
	ep, terr := r.CreateEndpoint(&wq)
	if terr != nil {
		// The client gave up or reset during the handshake.
		r.Complete(true)
		upstreamStream(up).Abort()
		return
	}
	r.Complete(false)
	ep.SocketOptions().SetKeepAlive(true)
	idle := tcpip.KeepaliveIdleOption(clientKeepalive)
	_ = ep.SetSockOpt(&idle)
	intvl := tcpip.KeepaliveIntervalOption(clientKeepalive / 4)
	_ = ep.SetSockOpt(&intvl)

	conn := gonet.NewTCPConn(&wq, ep)
	var ins streamInspector
	if v.Armed {
		if in := pol.NewInspector(&f, v); in != nil {
			ins = in
		}
	}
	onHit := func(h policy.Hit) {
		s.ctr.payloadHits.Add(1)
		s.ct.SetVerdict(key, conntrack.Verdict{Action: uint8(h.Action), Rule: h.RuleID})
		s.dlog.write(&decisionRecord{
			rule: pol.RuleNameAt(h.Rule), action: h.Action.String(), proto: protoTCP,
			src: client, dst: dst, reason: reasonPayload, pattern: h.Pattern,
		})
	}
	relayTCP(s.flowCtx, Stream{Conn: conn, Abort: ep.Abort}, upstreamStream(up), ins, onHit)
}

// addrPortOf converts a gVisor address and port.
func addrPortOf(a tcpip.Address, port uint16) netip.AddrPort {
	var ip netip.Addr
	if a.Len() == 4 {
		ip = netip.AddrFrom4(a.As4())
	} else {
		ip = netip.AddrFrom16(a.As16())
	}
	return netip.AddrPortFrom(ip, port)
}

// keyOf is the conntrack key of a flow's original direction.
func keyOf(proto uint8, src, dst netip.AddrPort) conntrack.Key {
	k := conntrack.Key{Proto: proto, SrcPort: src.Port(), DstPort: dst.Port()}
	if src.Addr().Is4() {
		k.Family = 4
		a, b := src.Addr().As4(), dst.Addr().As4()
		copy(k.Src[:], a[:])
		copy(k.Dst[:], b[:])
	} else {
		k.Family = 6
		k.Src, k.Dst = src.Addr().As16(), dst.Addr().As16()
	}
	return k
}
