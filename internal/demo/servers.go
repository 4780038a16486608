package demo

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tungate/tungate/internal/lab"
)

// Greeting is the body the demo's web server answers with.
const Greeting = "hello from the server"

// jndiMarker is what the no-jndi rule blocks; the server notes if it ever
// reads it, which would mean the gateway let it through.
var jndiMarker = []byte("${jndi:")

// Ports the demo's servers listen on inside the server namespace.
const (
	PortHTTP       = 80
	PortTCPReject  = 8081
	PortTCPDrop    = 8082
	PortUDPEcho    = 5353
	PortUDPBlocked = 5354
	PortTLS        = 443
	PortDNS        = 53
)

// Servers are the demo's listeners in the server namespace. Every one of
// them would accept or answer, so a refusal or silence seen by the client can
// only come from the gateway.
type Servers struct {
	sawJNDI atomic.Bool

	closers []io.Closer
	http    *http.Server
	wg      sync.WaitGroup // one per serving goroutine; all end on Close
}

// StartServers opens all listeners in ns (dual-stack, wildcard address).
func StartServers(ns lab.NS) (*Servers, error) {
	s := &Servers{}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()

	ln, err := ns.Listen("tcp", fmt.Sprintf("[::]:%d", PortHTTP))
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, Greeting)
	})
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	s.closers = append(s.closers, s.http)
	s.wg.Go(func() { s.http.Serve(&recordingListener{Listener: ln, s: s}) })

	for _, port := range []int{PortTCPReject, PortTCPDrop} {
		ln, err := ns.Listen("tcp", fmt.Sprintf("[::]:%d", port))
		if err != nil {
			return nil, err
		}
		s.closers = append(s.closers, ln)
		s.wg.Go(func() { acceptAndClose(ln) })
	}
	for _, port := range []int{PortUDPEcho, PortUDPBlocked} {
		pc, err := ns.ListenPacket("udp", fmt.Sprintf("[::]:%d", port))
		if err != nil {
			return nil, err
		}
		s.closers = append(s.closers, pc)
		s.wg.Go(func() { echo(pc) })
	}
	cert, err := selfSigned()
	if err != nil {
		return nil, err
	}
	rawTLS, err := ns.Listen("tcp", fmt.Sprintf("[::]:%d", PortTLS))
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, rawTLS)
	tln := tls.NewListener(rawTLS, &tls.Config{Certificates: []tls.Certificate{cert}})
	s.wg.Go(func() { s.serveTLS(tln) })
	dns, err := ns.ListenPacket("udp", fmt.Sprintf("[::]:%d", PortDNS))
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, dns)
	s.wg.Go(func() { serveDNS(dns) })
	ok = true
	return s, nil
}

// SawJNDI reports whether any connection to the web server ever carried
// "${jndi:" (in any case).
func (s *Servers) SawJNDI() bool { return s.sawJNDI.Load() }

// Close stops every listener and waits for the serving goroutines.
func (s *Servers) Close() error {
	var errs []error
	for _, c := range s.closers {
		if err := c.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	s.wg.Wait()
	return errors.Join(errs...)
}

// acceptAndClose accepts until ln is closed; a connection is all these
// ports need to prove the server side would have taken it.
func acceptAndClose(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}

// echo answers every datagram with itself until pc is closed.
func echo(pc net.PacketConn) {
	answerEach(pc, 2048, func(req []byte) ([]byte, bool) { return req, true })
}

// answerEach reads datagrams of up to size bytes from pc and sends each
// sender what answer makes of its datagram (nothing when ok is false),
// until pc is closed.
func answerEach(pc net.PacketConn, size int, answer func(req []byte) (resp []byte, ok bool)) {
	buf := make([]byte, size)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if resp, ok := answer(buf[:n]); ok {
			pc.WriteTo(resp, from)
		}
	}
}

// recordingListener hands out connections that watch their inbound bytes
// for the JNDI marker, below HTTP parsing, so even a partial request counts.
type recordingListener struct {
	net.Listener
	s *Servers
}

func (l *recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &recordingConn{Conn: c, s: l.s}, nil
}

type recordingConn struct {
	net.Conn
	s *Servers
	// tail keeps the last bytes of the previous read so a marker split
	// across reads is still seen. Only the serving goroutine reads.
	tail []byte
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		buf := append(c.tail, p[:n]...)
		if bytes.Contains(bytes.ToLower(buf), jndiMarker) {
			c.s.sawJNDI.Store(true)
		}
		keep := min(len(buf), len(jndiMarker)-1)
		c.tail = append(c.tail[:0], buf[len(buf)-keep:]...)
	}
	return n, err
}
