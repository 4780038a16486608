package l7gate

import (
	"context"
	"errors"
	"io"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"

	"github.com/tungate/tungate/conntrack"
	"github.com/tungate/tungate/policy"
	"github.com/tungate/tungate/stack/relay"
	"github.com/tungate/tungate/stack/verdict"
)

// extractReadSize is one read of a pending flow's first client bytes.
const extractReadSize = 4096

// ServePending serves a TCP flow whose first packet's verdict is pending
// on a tls.sni or http.* field. The client's handshake is complete and
// nothing has been dialed: read the client's first bytes until the
// extractor has the field, [inspect] max_bytes ran out or [inspect]
// timeout passed, resume the rules with what was found, and then either
// dial, replay the buffered bytes upstream and relay, or refuse the
// client without ever reaching the server. A server-first protocol, whose
// client sends nothing, reaches the timeout with every field absent and
// goes on normally when the rules allow that. f describes the flow for
// policy; cc is closed when it returns.
func (g *Gate) ServePending(ctx context.Context, cc *ClientConn, f *policy.Flow, key conntrack.Key, a verdict.Armed) {
	pol, v := a.Policy, a.Verdict
	var buf []byte
	var fields *policy.L7Fields
	if x := pol.NewL7Extractor(v); x != nil {
		var err error
		buf, err = readFirstBytes(ctx, cc.TCPConn, x, int(pol.Inspect().MaxBytes), pol.Inspect().Timeout.D())
		if err != nil {
			// The client reset, or the flow was ended (flush, recheck,
			// shutdown) while it was read.
			cc.Reset()
			return
		}
		fields = x.Fields()
	}
	final := pol.Resume(f, v, fields)
	d := verdict.Decision{Stage: verdict.StageResume, Policy: pol, Verdict: final, Prior: &v, Key: key}
	if fields != nil {
		// Resume normalized the names in place.
		switch {
		case fields.Proto == policy.L7TLS && len(fields.SNI) > 0:
			d.Read, d.ReadValue = policy.FieldSNI, string(fields.SNI)
		case fields.Proto == policy.L7HTTP && len(fields.Host) > 0:
			d.Read, d.ReadValue = policy.FieldHTTPHost, string(fields.Host)
		}
	}
	if g.apply.Apply(&d) != verdict.Pass {
		cc.refuse(final.Action, final.Reject)
		return
	}

	var ins relay.Inspector
	var gate *httpGate
	hitH := &hits{g: g, pol: pol, key: key, cc: cc}
	if in := pol.NewInspector(f, final); in != nil {
		gate = &httpGate{in: &auditing{in: in, g: g, pol: pol, key: key}, g: g, pol: pol, key: key}
		ins = gatedInspector{gate}
	}
	keep := len(buf)
	if gate != nil && len(buf) > 0 {
		// The replayed bytes are inspected first: a payload pattern, or a
		// refused request with nothing allowed before it, ends the flow
		// before anything is dialed.
		k, h, hit := gate.inspect(buf)
		if hit {
			gate.refused(&h)
			if k == 0 || isPayloadHit(&h) {
				cc.refuse(h.Action, h.Reject)
				return
			}
			cc.refuseLater(h.Action, h.Reject)
			gate.eof = true
			keep = k
		}
	}

	up, err := g.dialUpstream(ctx, &key)
	if err != nil {
		// Too late for a refusal at the handshake: either way the client
		// gets a reset.
		cc.Reset()
		return
	}
	upstream := relay.Upstream(up)
	if keep > 0 {
		if _, err := up.Write(buf[:keep]); err != nil {
			upstream.Abort()
			cc.Reset()
			return
		}
	}
	if gate != nil {
		gate.upstream = up
		if gate.eof {
			gate.expire()
		}
		cc.gate = gate
	}
	relay.TCP(ctx, cc, upstream, ins, hitH)
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
