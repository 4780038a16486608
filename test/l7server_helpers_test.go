package test

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/tungate/tungate/internal/lab"
)

// recorder is a TCP server in the server namespace that keeps every byte
// each accepted connection sent it, so a test can say exactly what got
// past the gateway.
type recorder struct {
	mu      sync.Mutex      // guards conns, changed
	conns   []*bytes.Buffer // one per accepted connection, in accept order
	changed chan struct{}   // closed and replaced whenever conns or a buffer grows
}

// record serves addr in ns; handle (nil: read until EOF) runs on each
// connection with a reader that records what it consumes.
func record(t *testing.T, ns lab.NS, addr netip.AddrPort, handle func(c net.Conn, r io.Reader)) *recorder {
	t.Helper()
	rec := &recorder{changed: make(chan struct{})}
	serve(t, ns, addr, func(c net.Conn) {
		rec.mu.Lock()
		buf := new(bytes.Buffer)
		rec.conns = append(rec.conns, buf)
		rec.notify()
		rec.mu.Unlock()
		r := &recordingReader{rec: rec, buf: buf, c: c}
		if handle == nil {
			_, _ = io.Copy(io.Discard, r)
			return
		}
		handle(c, r)
	})
	return rec
}

// recordingReader appends what it reads to its connection's buffer.
type recordingReader struct {
	rec *recorder
	buf *bytes.Buffer
	c   net.Conn
}

func (r *recordingReader) Read(p []byte) (int, error) {
	n, err := r.c.Read(p)
	if n > 0 {
		r.rec.mu.Lock()
		r.buf.Write(p[:n])
		r.rec.notify()
		r.rec.mu.Unlock()
	}
	return n, err
}

// notify wakes waiters; rec.mu held.
func (rec *recorder) notify() {
	close(rec.changed)
	rec.changed = make(chan struct{})
}

// received returns a copy of what each connection sent so far.
func (rec *recorder) received() [][]byte {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	out := make([][]byte, len(rec.conns))
	for i, b := range rec.conns {
		out[i] = bytes.Clone(b.Bytes())
	}
	return out
}

// waitFor waits up to timeout until ok holds for what the connections
// sent, and returns the last state it looked at.
func (rec *recorder) waitFor(ok func([][]byte) bool, timeout time.Duration) ([][]byte, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		rec.mu.Lock()
		changed := rec.changed
		rec.mu.Unlock()
		got := rec.received()
		if ok(got) {
			return got, true
		}
		select {
		case <-changed:
		case <-deadline.C:
			return rec.received(), false
		}
	}
}

// containsAny reports whether any connection's bytes contain pat, ASCII
// case ignored (a gateway that let a case variant through leaked it too).
func containsAny(conns [][]byte, pat string) bool {
	for _, c := range conns {
		if bytes.Contains(bytes.ToLower(c), bytes.ToLower([]byte(pat))) {
			return true
		}
	}
	return false
}

// quoteConns shows what a server received, for failure messages.
func quoteConns(conns [][]byte) string {
	if len(conns) == 0 {
		return "no connection"
	}
	var b strings.Builder
	for i, c := range conns {
		const show = 400
		q := c
		if len(q) > show {
			q = q[:show]
		}
		fmt.Fprintf(&b, "\n  conn %d (%d bytes): %q", i, len(c), q)
	}
	return b.String()
}

// testCert is a self-signed certificate for names, and a pool trusting it.
func testCert(t *testing.T, names ...string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: names[0]},
		DNSNames:              names,
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// tlsGreeting is what the TLS server writes after a completed handshake,
// followed by the server name it was asked for.
const tlsGreeting = "hello over tls to "

// serveTLS records every connection at the TCP level (so a ClientHello
// that got through shows in the recorder even if the handshake failed)
// and, on top, completes a TLS handshake and writes tlsGreeting+SNI.
func serveTLS(t *testing.T, ns lab.NS, addr netip.AddrPort, cert tls.Certificate) *recorder {
	t.Helper()
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	return record(t, ns, addr, func(c net.Conn, r io.Reader) {
		tc := tls.Server(readerConn{Conn: c, r: r}, cfg)
		if err := tc.Handshake(); err != nil {
			return
		}
		_, _ = io.WriteString(tc, tlsGreeting+tc.ConnectionState().ServerName+"\n")
		_, _ = io.Copy(io.Discard, tc)
	})
}

// readerConn is a net.Conn whose reads come from r.
type readerConn struct {
	net.Conn
	r io.Reader
}

func (c readerConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// serveHTTP answers each HTTP/1.1 request on a connection, pipelined ones
// in order, with 200 and the body "served PATH for HOST".
func serveHTTP(t *testing.T, ns lab.NS, addr netip.AddrPort) *recorder {
	t.Helper()
	return record(t, ns, addr, func(c net.Conn, r io.Reader) {
		br := bufio.NewReader(r)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, req.Body)
			body := "served " + req.URL.Path + " for " + req.Host
			if _, err := fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Type: text/plain\r\n\r\n%s", len(body), body); err != nil {
				return
			}
		}
	})
}

// dnsAnswer is the A record the test DNS server gives every name.
var dnsAnswer = [4]byte{198, 18, 9, 9}

// dnsServer answers every A query with dnsAnswer and keeps the names it
// was asked, as sent.
type dnsServer struct {
	mu    sync.Mutex // guards names
	names []string
}

func (d *dnsServer) asked() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.names...)
}

// serveDNS runs a DNS server on UDP addr inside ns until the test ends.
func serveDNS(t *testing.T, ns lab.NS, addr netip.AddrPort) *dnsServer {
	t.Helper()
	pc, err := ns.ListenPacket("udp", addr.String())
	if err != nil {
		t.Fatalf("dns server on %s: %v", addr, err)
	}
	d := &dnsServer{}
	done := make(chan struct{})
	// Owned by the test; ends when the cleanup closes pc.
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			resp, name, ok := dnsReply(buf[:n])
			if !ok {
				continue
			}
			d.mu.Lock()
			d.names = append(d.names, name)
			d.mu.Unlock()
			_, _ = pc.WriteTo(resp, from)
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		<-done
	})
	return d
}

// dnsReply answers query msg with one A record.
func dnsReply(msg []byte) ([]byte, string, bool) {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil || h.Response {
		return nil, "", false
	}
	q, err := p.Question()
	if err != nil {
		return nil, "", false
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true})
	b.EnableCompression()
	if b.StartQuestions() != nil || b.Question(q) != nil || b.StartAnswers() != nil {
		return nil, "", false
	}
	if q.Type == dnsmessage.TypeA {
		if b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.AResource{A: dnsAnswer}) != nil {
			return nil, "", false
		}
	}
	out, err := b.Finish()
	return out, q.Name.String(), err == nil
}
