package demo

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/tungate/tungate/internal/lab"
)

// Names the L7 rows ask for; configs/demo.toml blocks blocked.example and
// everything below it.
const (
	BlockedName = "blocked.example"
	AllowedName = "allowed.example"
)

// Outcomes of the L7 probes.
const (
	Handshake = "handshake"     // the TLS handshake with the server completed
	NXDomain  = "NXDOMAIN"      // an NXDOMAIN answering the query (same id and question)
	Answer    = "server answer" // the demo's DNS server answered the query
)

// selfSigned makes the demo TLS server's certificate, for any name: the
// probe checks that the handshake completes, not who signed it.
func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "tungate demo"},
		DNSNames:     []string{AllowedName, BlockedName},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// serveTLS completes a TLS handshake on every connection of ln and says
// which name the client asked for, until ln is closed.
func (s *Servers) serveTLS(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s.wg.Go(func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			tc := c.(*tls.Conn)
			if tc.Handshake() == nil {
				fmt.Fprintf(tc, "hello %s\n", tc.ConnectionState().ServerName)
			}
		})
	}
}

// serveDNS answers every query on pc with one A record (the server's
// address) for the name asked, until pc is closed.
func serveDNS(pc net.PacketConn) {
	answerEach(pc, 1500, func(query []byte) ([]byte, bool) {
		resp, err := dnsAnswer(query)
		return resp, err == nil
	})
}

func dnsAnswer(query []byte) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, err
	}
	q, err := p.Question()
	if err != nil {
		return nil, err
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired})
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	if q.Type == dnsmessage.TypeA {
		rr := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}
		if err := b.AResource(rr, dnsmessage.AResource{A: lab.ServerV4.As4()}); err != nil {
			return nil, err
		}
	}
	return b.Finish()
}

// tlsHandshake runs a TLS handshake for sni with the server at dst and
// reports Handshake, or what ended it.
func tlsHandshake(ctx context.Context, ns lab.NS, dst netip.AddrPort, sni string, timeout time.Duration) string {
	return overTCP(ctx, ns, dst, timeout, func(ctx context.Context, c net.Conn) string {
		tc := tls.Client(c, &tls.Config{ServerName: sni, InsecureSkipVerify: true})
		if err := tc.HandshakeContext(ctx); err != nil {
			return classify(err)
		}
		return Handshake
	})
}

// dnsLookup sends one A query for name to dst and reports NXDomain,
// Answer, or what went wrong (a mismatched id or question counts as
// wrong: a resolver would not accept it).
func dnsLookup(ctx context.Context, ns lab.NS, dst netip.AddrPort, name string, wait time.Duration) string {
	c, err := ns.Dial(ctx, "udp", dst.String())
	if err != nil {
		return "error: " + err.Error()
	}
	defer c.Close()
	var idb [2]byte
	rand.Read(idb[:])
	id := uint16(idb[0])<<8 | uint16(idb[1])
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, RecursionDesired: true})
	b.StartQuestions()
	qn := dnsmessage.MustNewName(name + ".")
	b.Question(dnsmessage.Question{Name: qn, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	msg, err := b.Finish()
	if err != nil {
		return "error: " + err.Error()
	}
	if _, err := c.Write(msg); err != nil {
		return classify(err)
	}
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if err != nil {
		if o := classify(err); o != Timeout {
			return o
		}
		return NoReply
	}
	var p dnsmessage.Parser
	h, err := p.Start(buf[:n])
	if err != nil {
		return "malformed answer"
	}
	q, err := p.Question()
	switch {
	case err != nil || q.Name != qn:
		return "answer for another question"
	case h.ID != id || !h.Response:
		return fmt.Sprintf("answer with id %d, asked %d", h.ID, id)
	case h.RCode == dnsmessage.RCodeNameError:
		return NXDomain
	case h.RCode == dnsmessage.RCodeSuccess:
		return Answer
	}
	return "rcode " + h.RCode.String()
}
