package l7gate

import (
	"net"

	"github.com/tungate/tungate/conntrack"
	"github.com/tungate/tungate/policy"
	"github.com/tungate/tungate/policy/l7"
	"github.com/tungate/tungate/stack/packet"
	"github.com/tungate/tungate/stack/verdict"
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
// dns.qname: DNS is decided per query. Each message goes through
// DecideDNS; a message that is not a query with exactly one question has
// its name absent, so only rules that allow an absent name let it pass.
// It is used by one goroutine at a time.
type dnsFlow struct {
	g   *Gate
	pol *policy.Policy
	v   policy.Verdict
	f   policy.Flow
	key conntrack.Key
	tcp bool
	nx  [512]byte // backs NXDOMAIN answers (a question name is at most 255 bytes)
	q   l7.Query  // the query being decided; here so it costs no allocation
}

func (g *Gate) newDNSFlow(f *policy.Flow, key conntrack.Key, a verdict.Armed) *dnsFlow {
	return &dnsFlow{g: g, pol: a.Policy, v: a.Verdict, f: *f, key: key, tcp: key.Proto == packet.ProtoTCP}
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
	dec := verdict.Decision{Stage: verdict.StageQuery, Policy: d.pol, Verdict: v, Prior: &d.v, Key: d.key}
	if qp != nil {
		dec.Name = qp.Name()
	}
	d.g.apply.Apply(&dec)
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

// DNSConn returns the client side of a UDP flow pending on dns.qname as
// the relay sees it: Read returns only the datagrams to forward, after
// answering or dropping the others; writes (the server's answers) pass
// through.
func (g *Gate) DNSConn(c net.Conn, f *policy.Flow, key conntrack.Key, a verdict.Armed) net.Conn {
	return &dnsConn{Conn: c, d: g.newDNSFlow(f, key, a)}
}

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
