package stack

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/tungate/tungate/conntrack"
	"github.com/tungate/tungate/policy"
	"github.com/tungate/tungate/policy/l7"
)

// dnsAct is what happens to one DNS message of a flow pending on
// dns.qname.
type dnsAct uint8

const (
	dnsForward dnsAct = iota // send it on to the server
	dnsAnswer                // answer the client with NXDOMAIN instead
	dnsDrop                  // send nothing: the client's query times out
	dnsReset                 // end the flow (TCP: reset both sides)
)

// dnsFlow decides the queries of one flow whose verdict is pending on
// dns.qname (DESIGN §2: DNS is parsed per query). Each message goes
// through DecideDNS; a message that is not a query with exactly one
// question has its name absent, so only rules that allow an absent name
// let it pass. It is used by one goroutine at a time.
type dnsFlow struct {
	s   *Stack
	pol *policy.Policy
	v   policy.Verdict
	f   policy.Flow
	key conntrack.Key
	tcp bool
	nx  [512]byte // backs NXDOMAIN answers (a question name is at most 255 bytes)
	q   l7.Query  // the query being decided; here so it costs no allocation
	// named: the flow's cached verdict names the rule that allowed its
	// first query, not the dns rule it was pending at.
	named bool
}

func (s *Stack) newDNSFlow(key conntrack.Key, a armedFlow) *dnsFlow {
	return &dnsFlow{s: s, pol: a.pol, v: a.v, f: s.flowOfKey(&key, key.Family), key: key, tcp: key.Proto == protoTCP}
}

// decide returns what to do with msg and, for dnsAnswer, the answer
// (valid until the next call).
func (d *dnsFlow) decide(msg []byte) (dnsAct, []byte) {
	var err error
	d.q, err = l7.ParseQuery(msg)
	qp := &d.q
	if err != nil {
		qp = nil
	}
	v := d.pol.DecideDNS(&d.f, d.v, qp)
	d.account(&v, qp)
	switch v.Action {
	case policy.ActionAllow:
		return dnsForward, nil
	case policy.ActionReject:
		if v.Reject == policy.RejectDNSNXDomain && qp != nil {
			if ans, err := l7.NXDomain(msg, d.nx[:0]); err == nil {
				return dnsAnswer, ans
			}
			return dnsDrop, nil
		}
		if d.tcp {
			return dnsReset, nil
		}
		// An ICMP error cannot be synthesized from the socket side of a
		// UDP flow: the query goes unanswered.
	}
	return dnsDrop, nil
}

// account logs, counts and records one query's decision.
func (d *dnsFlow) account(v *policy.Verdict, q *l7.Query) {
	s, pol := d.s, d.pol
	name := v.Value
	if v.LogRule >= 0 {
		s.logKey(pol.RuleNameAt(v.LogRule), "log", &d.key, reasonLogRule, "")
	}
	for _, h := range v.Audits() {
		s.ctr.auditHits.Add(1)
		if name == "" && q != nil {
			name = string(q.Name())
		}
		if h.Rule >= 0 {
			pol.CountFlow(int(h.Rule))
		}
		s.logField(pol.RuleNameAt(int(h.Rule)), wouldName(h.Action), &d.key, reasonAudit, policy.FieldDNSQName, name)
	}
	if v.Field != policy.FieldNone {
		// A query a dns rule decided counts as one flow of that rule.
		pol.CountFlow(v.Rule)
	}
	if v.Log {
		if name == "" && q != nil {
			name = string(q.Name())
		}
		s.logField(pol.RuleNameAt(v.Rule), v.Action.String(), &d.key, reasonDNS, policy.FieldDNSQName, name)
	}
	if !d.named && v.Action == policy.ActionAllow {
		d.named = true
		if v.RuleID != d.v.RuleID {
			s.ct.SetVerdict(d.key, conntrack.Verdict{Action: uint8(policy.ActionAllow), Rule: v.RuleID})
		}
	}
	if v.Action != policy.ActionAllow {
		if name == "" && q != nil {
			name = string(q.Name())
		}
		s.l7.record(d.key, policy.FieldDNSQName, name, pol.RuleNameAt(v.Rule), v.Action.String())
	} else if q != nil && !s.l7.hasDNSName(d.key) {
		s.l7.recordFirst(d.key, policy.FieldDNSQName, string(q.Name()))
	}
}

// dnsConn is the client side of a UDP flow pending on dns.qname, as
// relayUDP sees it: Read returns only the datagrams to forward, after
// answering or dropping the others. Writes (the server's answers) pass
// through.
type dnsConn struct {
	net.Conn
	d *dnsFlow
}

func (c *dnsConn) Read(b []byte) (int, error) {
	for {
		n, err := c.Conn.Read(b)
		if err != nil || n == 0 {
			return n, err
		}
		switch act, ans := c.d.decide(b[:n]); act {
		case dnsForward:
			return n, nil
		case dnsAnswer:
			if _, err := c.Conn.Write(ans); err != nil {
				return 0, err
			}
		}
	}
}

// dnsTCPBufSize is one read of a DNS-over-TCP relay.
const dnsTCPBufSize = 16 << 10

// dnsTCP relays a TCP flow pending on dns.qname (DNS over TCP, RFC 7766)
// message by message: each client message is decided on its own and
// forwarded, answered with NXDOMAIN, or dropped; a refusal of another
// kind resets both sides. The server's messages are written to the client
// whole, so an answer from the gateway never lands inside one. Armed
// payload rules are not scanned on such flows. Both connections are
// closed when it returns.
func (s *Stack) dnsTCP(ctx context.Context, cc *clientConn, up Stream, key conntrack.Key, a armedFlow) {
	d := s.newDNSFlow(key, a)
	client := cc.stream()
	var once sync.Once
	abort := func() {
		once.Do(func() {
			client.Abort()
			up.Abort()
			past := time.Unix(1, 0)
			_ = cc.SetDeadline(past)
			_ = up.Conn.SetDeadline(past)
		})
	}
	stop := context.AfterFunc(ctx, abort)
	defer stop()

	var wmu sync.Mutex // serialises whole messages written to the client
	writeClient := func(frame []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		_, err := cc.Write(frame)
		return err
	}
	var wg sync.WaitGroup
	wg.Add(1)
	// Server to client; owned by this call, ends when the server's stream
	// ends or the flow is aborted.
	go func() {
		defer wg.Done()
		pumpDNS(up.Conn, func(msg []byte, out []byte) ([]byte, bool) {
			out, err := l7.AppendTCPFrame(out[:0], msg)
			return out, err == nil && writeClient(out) == nil
		}, func() { _ = cc.CloseWrite() }, abort)
	}()
	pumpDNS(cc, func(msg []byte, out []byte) ([]byte, bool) {
		act, ans := d.decide(msg)
		var err error
		switch act {
		case dnsForward:
			if out, err = l7.AppendTCPFrame(out[:0], msg); err == nil {
				_, err = up.Conn.Write(out)
			}
		case dnsAnswer:
			if out, err = l7.AppendTCPFrame(out[:0], ans); err == nil {
				err = writeClient(out)
			}
		case dnsReset:
			return out, false
		}
		return out, err == nil
	}, func() { _ = up.Conn.CloseWrite() }, abort)
	wg.Wait()
	_ = cc.Close()
	_ = up.Conn.Close()
}

// pumpDNS reads src, splits it into DNS-over-TCP messages and hands each
// to emit (with a reusable output buffer) until emit refuses (abort), src
// ends cleanly (eof) or fails (abort).
func pumpDNS(src io.Reader, emit func(msg, out []byte) ([]byte, bool), eof, abort func()) {
	var fr l7.TCPFramer
	buf := make([]byte, dnsTCPBufSize)
	var out []byte
	for {
		n, err := src.Read(buf)
		data := buf[:n]
		for len(data) > 0 {
			k, msg, ok := fr.Feed(data)
			data = data[k:]
			if !ok {
				break
			}
			var cont bool
			if out, cont = emit(msg, out); !cont {
				abort()
				return
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				eof()
			} else {
				abort()
			}
			return
		}
	}
}
