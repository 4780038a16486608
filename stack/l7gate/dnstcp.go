package l7gate

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/tungate/tungate/conntrack"
	"github.com/tungate/tungate/policy"
	"github.com/tungate/tungate/policy/l7"
	"github.com/tungate/tungate/stack/relay"
	"github.com/tungate/tungate/stack/verdict"
)

// dnsTCPBufSize is one read of a DNS-over-TCP relay.
const dnsTCPBufSize = 16 << 10

// ServeDNSTCP relays a TCP flow pending on dns.qname (DNS over TCP, RFC
// 7766) message by message: each client message is decided on its own and
// forwarded, answered with NXDOMAIN, or dropped; a refusal of another
// kind resets both sides. The server's messages are written to the client
// whole, so an answer from the gateway never lands inside one. Armed
// payload rules are not scanned on such flows. Both connections are
// closed when it returns.
func (g *Gate) ServeDNSTCP(ctx context.Context, cc *ClientConn, up relay.Conn, f *policy.Flow, key conntrack.Key, a verdict.Armed) {
	d := g.newDNSFlow(f, key, a)
	var once sync.Once
	abort := func() {
		once.Do(func() {
			cc.Abort()
			up.Abort()
			past := time.Unix(1, 0)
			_ = cc.SetDeadline(past)
			_ = up.SetDeadline(past)
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
		pumpDNS(up, func(msg []byte, out []byte) ([]byte, bool) {
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
				_, err = up.Write(out)
			}
		case dnsAnswer:
			if out, err = l7.AppendTCPFrame(out[:0], ans); err == nil {
				err = writeClient(out)
			}
		case dnsReset:
			return out, false
		}
		return out, err == nil
	}, func() { _ = up.CloseWrite() }, abort)
	wg.Wait()
	_ = cc.Close()
	_ = up.Close()
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
