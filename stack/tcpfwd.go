package stack

import (
	"context"
	"io"
	"net/netip"
	"sync"
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
	// limit tokens, so it must not run again): an inspected or pending
	// flow's verdict was kept for this handler. A reload or flush since
	// then has set the cached verdict or removed the flow, and its packets
	// go nowhere.
	armed, inspect := s.flowReg.take(key)
	relayCtx, stopRelay := context.WithCancel(s.flowCtx)
	defer stopRelay()
	defer s.flowReg.register(key, stopRelay)()

	pending := inspect && armed.v.Pending
	if pending {
		s.l7.start(key)
		defer s.l7.stop(key)
		if armed.v.Need&policy.NeedDNS == 0 {
			// tls.sni / http.*: the field comes from the client's first
			// bytes, so the handshake completes before any dial.
			if cc := s.acceptClient(r, relayCtx); cc != nil {
				s.pendingTCP(relayCtx, cc, key, armed)
			}
			return
		}
	}

	ctx, cancel := context.WithTimeout(s.flowCtx, s.egress.DialTimeout.D())
	up, err := s.dialTCP(ctx, dst)
	cancel()
	if err != nil {
		s.ctr.tcpDialFailures.Add(1)
		r.Complete(IsRefused(err))
		return
	}
	cc := s.acceptClient(r, relayCtx)
	if cc == nil {
		upstreamStream(up).Abort()
		return
	}
	if pending {
		// dns.qname over TCP: decided message by message.
		s.dnsTCP(relayCtx, cc, upstreamStream(up), key, armed)
		return
	}
	var ins streamInspector
	var onHit func(policy.Hit)
	if inspect {
		f := policy.Flow{Proto: protoTCP, Src: client.Addr(), Dst: dst.Addr(), SrcPort: client.Port(), DstPort: dst.Port()}
		ins, onHit = s.inspection(armed.pol, &f, armed.v, key, cc)
	}
	relayTCP(relayCtx, cc.stream(), upstreamStream(up), ins, onHit)
}

// acceptClient completes the client's handshake; nil when the client gave
// up or reset during it.
func (s *Stack) acceptClient(r *tcp.ForwarderRequest, ctx context.Context) *clientConn {
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
	return &clientConn{TCPConn: gonet.NewTCPConn(&wq, ep), ep: ep, ctx: ctx}
}

// inspection returns the inspector of an allowed flow's armed payload
// rules and per-request HTTP checks (nil when none are armed) and the
// relay's hit handler.
func (s *Stack) inspection(pol *policy.Policy, f *policy.Flow, v policy.Verdict, key conntrack.Key, cc *clientConn) (streamInspector, func(policy.Hit)) {
	var ins streamInspector
	if in := pol.NewInspector(f, v); in != nil {
		ins = &auditingInspector{in: in, onAudit: func(h policy.Hit) { s.payloadAudit(pol, h, key) }}
	}
	return ins, s.hitHandler(pol, key, cc)
}

// hitHandler is the relay's onHit: log and cache the hit, and make the
// client's end a 403 answer when the rule asks for one.
func (s *Stack) hitHandler(pol *policy.Policy, key conntrack.Key, cc *clientConn) func(policy.Hit) {
	return func(h policy.Hit) {
		s.payloadHit(pol, h, key)
		if h.Action == policy.ActionReject && h.Reject == policy.RejectHTTP403 {
			cc.answerForbidden()
		}
	}
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

// payloadAudit logs an audit-mode payload or HTTP request hit as
// would-<action>.
func (s *Stack) payloadAudit(pol *policy.Policy, h policy.Hit, key conntrack.Key) {
	s.ctr.auditHits.Add(1)
	s.logField(pol.RuleNameAt(h.Rule), wouldName(h.Action), &key, reasonAudit, hitField(&h), hitValue(&h))
}

// payloadHit acts on a drop or reject hit, which ends the flow: a payload
// pattern, or a later HTTP request of a kept-alive connection that the
// http.* rules refuse (counted as payload hits too). The verdict is cached
// first, so the log and conntrack agree with what the peers observe.
func (s *Stack) payloadHit(pol *policy.Policy, h policy.Hit, key conntrack.Key) {
	s.ctr.payloadHits.Add(1)
	s.ct.SetVerdict(key, conntrack.Verdict{Action: uint8(h.Action), Rule: h.RuleID})
	reason := reasonPayload
	if f := hitField(&h); f != policy.FieldPayload {
		reason = reasonHTTP
		if f != policy.FieldNone {
			s.l7.record(key, f, h.Value, pol.RuleNameAt(h.Rule), h.Action.String())
		}
	}
	s.logField(pol.RuleNameAt(h.Rule), h.Action.String(), &key, reason, hitField(&h), hitValue(&h))
}

// hitField is the field a hit decided on; payload hits from inspectors
// that do not set it are patterns.
func hitField(h *policy.Hit) policy.L7Field {
	if h.Field == policy.FieldNone && h.Pattern != "" {
		return policy.FieldPayload
	}
	return h.Field
}

func hitValue(h *policy.Hit) string {
	if h.Field == policy.FieldPayload || h.Value == "" {
		if h.Pattern != "" {
			return h.Pattern
		}
	}
	return h.Value
}

// clientConn is the client side of a relayed TCP flow. A refusal with
// RejectHTTP403 turns the relay's reset of the client into an answer:
// when the relay (or the pending path) closes the connection, the 403
// response goes out, the sending side is closed, and the client's
// remaining bytes are read and discarded for a moment so that closing
// with unread data does not reset the answer away.
type clientConn struct {
	*gonet.TCPConn
	ep  tcpip.Endpoint
	ctx context.Context // ends the lingering read early (teardown)

	gate *httpGate // nil: Read is the connection's own

	mu      sync.Mutex // guards answer, resetAt
	answer  bool       // send HTTP403Response on Close instead of resetting
	resetAt bool       // a refusal is due: reset on Close (and hold back the FIN)
}

// Read reads the client's bytes; on a gated flow only those the gate lets
// through.
func (c *clientConn) Read(b []byte) (int, error) {
	if c.gate != nil {
		return c.gatedRead(b)
	}
	return c.TCPConn.Read(b)
}

// refuseLater records a refusal that takes effect when the relay closes
// the connection: a 403 answer for RejectHTTP403, else a reset.
func (c *clientConn) refuseLater(a policy.Action, k policy.RejectKind) {
	if a == policy.ActionReject && k == policy.RejectHTTP403 {
		c.answerForbidden()
		return
	}
	c.mu.Lock()
	c.resetAt = true
	c.mu.Unlock()
}

// CloseWrite half-closes toward the client, unless a refusal is due: its
// answer (or reset) must be the end of the stream.
func (c *clientConn) CloseWrite() error {
	c.mu.Lock()
	due := c.answer || c.resetAt
	c.mu.Unlock()
	if due {
		return nil
	}
	return c.TCPConn.CloseWrite()
}

// forbiddenLinger bounds writing the 403 answer and draining the client.
const forbiddenLinger = 2 * time.Second

func (c *clientConn) stream() Stream { return Stream{Conn: c, Abort: c.abort} }

// answerForbidden makes the next abort and Close answer 403.
func (c *clientConn) answerForbidden() {
	c.mu.Lock()
	c.answer = true
	c.mu.Unlock()
}

func (c *clientConn) answering() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.answer
}

// abort resets the client, unless a 403 answer is due: then the relay's
// past deadline stops the pumps and Close answers.
func (c *clientConn) abort() {
	if !c.answering() {
		c.ep.Abort()
	}
}

// reset resets the client and releases the connection.
func (c *clientConn) reset() {
	c.ep.Abort()
	_ = c.TCPConn.Close()
}

// refuse ends a flow the rules refused after the handshake: a 403 answer
// for RejectHTTP403, a reset otherwise (drops too: see pendingTCP).
func (c *clientConn) refuse(a policy.Action, k policy.RejectKind) {
	if a == policy.ActionReject && k == policy.RejectHTTP403 {
		c.answerForbidden()
		_ = c.Close()
		return
	}
	c.reset()
}

// Close sends the 403 answer, or resets, when a refusal is due; then
// closes.
func (c *clientConn) Close() error {
	c.mu.Lock()
	answer, reset := c.answer, c.resetAt
	c.answer, c.resetAt = false, false
	c.mu.Unlock()
	if reset && !answer {
		c.ep.Abort()
	}
	if answer {
		_ = c.TCPConn.SetDeadline(time.Now().Add(forbiddenLinger))
		stop := context.AfterFunc(c.ctx, func() { _ = c.TCPConn.SetDeadline(time.Unix(1, 0)) })
		if _, err := io.WriteString(c.TCPConn, policy.HTTP403Response); err == nil && c.TCPConn.CloseWrite() == nil {
			var sink [2048]byte
			for {
				if _, err := c.TCPConn.Read(sink[:]); err != nil {
					break
				}
			}
		}
		stop()
	}
	return c.TCPConn.Close()
}

// netipDst is the destination of the flow with original-direction key k.
func netipDst(k *conntrack.Key) netip.AddrPort {
	return netip.AddrPortFrom(addrOf(&k.Dst, k.Family), k.DstPort)
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
