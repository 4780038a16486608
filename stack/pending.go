package stack

import (
	"context"
	"errors"
	"io"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"

	"github.com/tungate/tungate/conntrack"
	"github.com/tungate/tungate/policy"
)

// extractReadSize is one read of a pending flow's first client bytes.
const extractReadSize = 4096

// pendingTCP serves a TCP flow whose SYN verdict is pending on a tls.sni
// or http.* field (DESIGN §2). The client's handshake is already complete
// and nothing has been dialed: read the client's first bytes until the
// extractor has the field, [inspect] max_bytes ran out or [inspect]
// timeout passed, resume the rules with what was found, and then either
// dial, replay the buffered bytes upstream and relay, or refuse the client
// without ever reaching the server. A server-first protocol, whose client
// sends nothing, reaches the timeout with every field absent and goes on
// normally when the rules allow that.
//
// A drop resets the client like a reject does: the handshake has
// completed, so staying silent would only leave the client hanging.
func (s *Stack) pendingTCP(ctx context.Context, cc *clientConn, key conntrack.Key, a armedFlow) {
	pol, v := a.pol, a.v
	f := s.flowOfKey(&key, key.Family)
	x := pol.NewL7Extractor(v)
	var buf []byte
	var fields *policy.L7Fields
	if x != nil {
		var err error
		buf, err = readFirstBytes(ctx, cc.TCPConn, x, int(pol.Inspect().MaxBytes), pol.Inspect().Timeout.D())
		if err != nil {
			// The client reset, or the flow was ended (flush, recheck,
			// shutdown) while it was read.
			cc.reset()
			return
		}
		fields = x.Fields()
	}
	final := pol.Resume(&f, v, fields)
	read, value := policy.FieldNone, ""
	if fields != nil {
		// Resume normalized the names in place.
		switch {
		case fields.Proto == policy.L7TLS && len(fields.SNI) > 0:
			read, value = policy.FieldSNI, string(fields.SNI)
		case fields.Proto == policy.L7HTTP && len(fields.Host) > 0:
			read, value = policy.FieldHTTPHost, string(fields.Host)
		}
		if read != policy.FieldNone {
			s.l7.recordFirst(key, read, value)
		}
	}
	if final.Field == policy.FieldNone {
		// An L3/L4 rule after the pending one decided: the line still
		// says what was read.
		final.Field, final.Value = read, value
	}
	s.afterResume(pol, &v, &final, key)
	if final.Action != policy.ActionAllow {
		cc.refuse(final.Action, final.Reject)
		return
	}

	var ins streamInspector
	var gate *httpGate
	onHit := s.hitHandler(pol, key, cc)
	if in := pol.NewInspector(&f, final); in != nil {
		gate = &httpGate{
			in:       &auditingInspector{in: in, onAudit: func(h policy.Hit) { s.payloadAudit(pol, h, key) }},
			onRefuse: func(h policy.Hit) { s.payloadHit(pol, h, key) },
		}
		ins = gatedInspector{gate}
	}
	keep := len(buf)
	if gate != nil && len(buf) > 0 {
		// The replayed bytes are inspected first: a payload pattern, or a
		// refused request with nothing allowed before it, ends the flow
		// before anything is dialed.
		k, h, hit := gate.inspect(buf)
		if hit {
			gate.onRefuse(h)
			if k == 0 || isPayloadHit(&h) {
				cc.refuse(h.Action, h.Reject)
				return
			}
			cc.refuseLater(h.Action, h.Reject)
			gate.eof = true
			keep = k
		}
	}

	dctx, cancel := context.WithTimeout(ctx, s.egress.DialTimeout.D())
	up, err := s.dialTCP(dctx, netipDst(&key))
	cancel()
	if err != nil {
		// Too late for a refusal at the handshake: either way the client
		// gets a reset.
		s.ctr.tcpDialFailures.Add(1)
		cc.reset()
		return
	}
	upstream := upstreamStream(up)
	if keep > 0 {
		if _, err := up.Write(buf[:keep]); err != nil {
			upstream.Abort()
			cc.reset()
			return
		}
	}
	if gate != nil {
		gate.expire = func(d time.Duration) { _ = up.SetReadDeadline(time.Now().Add(d)) }
		if gate.eof {
			gate.expire(refusalDrain)
		}
		cc.gate = gate
	}
	relayTCP(ctx, cc.stream(), upstream, ins, onHit)
}

// readFirstBytes reads from c until x is done, c's stream ends, or
// timeout passes, and returns everything read (possibly beyond max, up to
// one read). It fails when c fails or ctx ends.
func readFirstBytes(ctx context.Context, c *gonet.TCPConn, x *policy.L7Extractor, max int, timeout time.Duration) ([]byte, error) {
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	stop := context.AfterFunc(ctx, func() { _ = c.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	buf := make([]byte, 0, min(max, extractReadSize))
	var scratch [extractReadSize]byte
	for {
		n, err := c.Read(scratch[:])
		if n > 0 {
			buf = append(buf, scratch[:n]...)
			if x.Feed(scratch[:n]) {
				break
			}
		}
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var ne interface{ Timeout() bool }
		if errors.Is(err, io.EOF) || (errors.As(err, &ne) && ne.Timeout()) {
			break
		}
		return nil, err
	}
	if !stop() && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	_ = c.SetReadDeadline(time.Time{})
	return buf, nil
}

// afterResume acts on what the final verdict of a pending flow adds to the
// one its SYN got (already logged and counted then): the deciding rule's
// counter, new audit hits, a log rule met after the pending one, new
// add_to actions, the decision line with the field's value, the cached
// verdict in conntrack and the flow's L7 record.
func (s *Stack) afterResume(pol *policy.Policy, pending, final *policy.Verdict, key conntrack.Key) {
	if final.Rule != pending.Rule {
		pol.CountFlow(final.Rule)
	}
	if pending.LogRule < 0 && final.LogRule >= 0 {
		s.logKey(pol.RuleNameAt(final.LogRule), "log", &key, reasonLogRule, "")
	}
	for _, h := range final.Audits()[min(int(pending.NAudit), int(final.NAudit)):] {
		s.ctr.auditHits.Add(1)
		if h.Rule >= 0 {
			pol.CountFlow(int(h.Rule))
		}
		s.logKey(pol.RuleNameAt(int(h.Rule)), wouldName(h.Action), &key, reasonAudit, "")
	}
	if final.NAddTo > pending.NAddTo {
		rest := *final
		n := copy(rest.AddTo[:], final.AddTo[pending.NAddTo:final.NAddTo])
		rest.NAddTo = uint8(n)
		flush, nf := pol.ApplyAddTo(&rest)
		for i := range nf {
			s.queueFlush(flush[i])
		}
	}
	name := pol.RuleNameAt(final.Rule)
	if final.Log {
		s.logField(name, final.Action.String(), &key, reasonL7, final.Field, final.Value)
	}
	switch final.Action {
	case policy.ActionReject:
		s.ctr.policyRejects.Add(1)
	case policy.ActionDrop:
		s.ctr.policyDrops.Add(1)
	}
	s.ct.SetVerdict(key, conntrack.Verdict{Action: uint8(final.Action), Rule: final.RuleID})
	if final.Field != policy.FieldNone && final.Field != policy.FieldPayload {
		s.l7.record(key, final.Field, final.Value, name, final.Action.String())
	}
}
