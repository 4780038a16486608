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

	// The flow was allowed at its SYN, and Decide ran then (it takes
	// limit tokens, so it must not run again): an inspected flow's verdict
	// was kept for this handler. A reload or flush since then has set the
	// cached verdict or removed the flow, and its packets go nowhere.
	armed, inspect := s.flowReg.take(key)
	relayCtx, stopRelay := context.WithCancel(s.flowCtx)
	defer stopRelay()
	defer s.flowReg.register(key, stopRelay)()

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
	var onHit func(policy.Hit)
	if inspect {
		pol, v := armed.pol, armed.v
		f := policy.Flow{Proto: protoTCP, Src: client.Addr(), Dst: dst.Addr(), SrcPort: client.Port(), DstPort: dst.Port()}
		if in := pol.NewInspector(&f, v); in != nil {
			ins = &auditingInspector{in: in, onAudit: func(h policy.Hit) { s.payloadAudit(pol, h, key) }}
		}
		onHit = func(h policy.Hit) { s.payloadHit(pol, h, key) }
	}
	relayTCP(relayCtx, Stream{Conn: conn, Abort: ep.Abort}, upstreamStream(up), ins, onHit)
}

// auditingInspector keeps audit-mode payload hits from the relay, which
// ends the flow on every drop or reject hit: they are logged and the flow
// goes on.
type auditingInspector struct {
	in      *policy.Inspector
	onAudit func(policy.Hit)
}

func (a *auditingInspector) Feed(dir policy.StreamDir, data []byte) (policy.Hit, bool) {
	h, ok := a.in.Feed(dir, data)
	if ok && h.Audit {
		a.onAudit(h)
		return policy.Hit{}, false
	}
	return h, ok
}

func (a *auditingInspector) Done() bool { return a.in.Done() }

// payloadAudit logs an audit-mode payload hit as would-<action>.
func (s *Stack) payloadAudit(pol *policy.Policy, h policy.Hit, key conntrack.Key) {
	s.ctr.auditHits.Add(1)
	s.logKey(pol.RuleNameAt(h.Rule), wouldName(h.Action), &key, reasonAudit, h.Pattern)
}

// payloadHit acts on a drop or reject payload hit, which ends the flow: the
// verdict is cached first, so the log and conntrack agree with what the
// peers observe.
func (s *Stack) payloadHit(pol *policy.Policy, h policy.Hit, key conntrack.Key) {
	s.ctr.payloadHits.Add(1)
	s.ct.SetVerdict(key, conntrack.Verdict{Action: uint8(h.Action), Rule: h.RuleID})
	s.logKey(pol.RuleNameAt(h.Rule), h.Action.String(), &key, reasonPayload, h.Pattern)
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
