package stack

import (
	"context"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	gstack "gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// closingUpstream answers one byte with one byte and closes first, as the
// benchmark's request/response server does, so the gateway's client-facing
// endpoint is the one that closes actively.
func closingUpstream(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	// Owned by the test; ends when the listener is closed by Cleanup.
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { // ends with the connection
				defer c.Close()
				var b [1]byte
				if _, err := io.ReadFull(c, b[:]); err == nil {
					_, _ = c.Write(b[:])
				}
			}()
		}
	}()
	return ln
}

// dialFrom connects from a fixed client port, as a Linux client does when
// its ephemeral range comes round to a port again.
func dialFrom(ctx context.Context, cs *gstack.Stack, src, dst netip.AddrPort) (*gonet.TCPConn, error) {
	proto := ipv4.ProtocolNumber
	if dst.Addr().Is6() {
		proto = ipv6.ProtocolNumber
	}
	var wq waiter.Queue
	ep, terr := cs.NewEndpoint(tcp.ProtocolNumber, proto, &wq)
	if terr != nil {
		return nil, &net.OpError{Op: "endpoint", Err: errString(terr.String())}
	}
	if terr := ep.Bind(tcpip.FullAddress{Addr: tcpip.AddrFromSlice(src.Addr().AsSlice()), Port: src.Port()}); terr != nil {
		ep.Close()
		return nil, &net.OpError{Op: "bind", Err: errString(terr.String())}
	}
	we, ch := waiter.NewChannelEntry(waiter.WritableEvents)
	wq.EventRegister(&we)
	defer wq.EventUnregister(&we)
	terr = ep.Connect(tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFromSlice(dst.Addr().AsSlice()), Port: dst.Port()})
	if _, started := terr.(*tcpip.ErrConnectStarted); started {
		select {
		case <-ch:
			terr = ep.LastError()
		case <-ctx.Done():
			ep.Close()
			return nil, ctx.Err()
		}
	}
	if terr != nil {
		ep.Close()
		return nil, &net.OpError{Op: "connect", Err: errString(terr.String())}
	}
	return gonet.NewTCPConn(&wq, ep), nil
}

type errString string

func (e errString) Error() string { return string(e) }

// TestReopenAfterGatewayClosedFirst: after a connection whose server closed
// first (so the gateway's endpoint toward the client closed actively), a new
// SYN on the same 4-tuple must reach the forwarder. gVisor's TIME_WAIT hands
// such a SYN only to a listening endpoint, so with TIME_WAIT kept the second
// connection got no SYN-ACK at all: after ~3,200 connections Linux clients
// reuse ports and every new connection through the gateway hung.
func TestReopenAfterGatewayClosedFirst(t *testing.T) {
	ln := closingUpstream(t)
	h := newHarness(t, harnessOpts{dialTCP: func(ctx context.Context, _ netip.AddrPort) (*net.TCPConn, error) {
		return dialTCPTo(ctx, ln.Addr().String())
	}})
	cs := clientStack(t, h.mem)
	for _, fam := range families() {
		t.Run(fam.name, func(t *testing.T) {
			src := netip.AddrPortFrom(fam.cli, 40000)
			dst := netip.AddrPortFrom(fam.srv, portAllow)
			for round := range 3 {
				// Bounds only a failure; a working gateway answers at once.
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				c, err := dialFromWhenFree(ctx, cs, src, dst)
				cancel()
				if err != nil {
					t.Fatalf("connection %d from %v: %v", round+1, src, err)
				}
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				b := []byte{'x'}
				if _, err := c.Write(b); err != nil {
					t.Fatalf("connection %d: write: %v", round+1, err)
				}
				if _, err := io.ReadFull(c, b); err != nil {
					t.Fatalf("connection %d: read response: %v", round+1, err)
				}
				// The server closes first; this side closes passively.
				if _, err := c.Read(b); err != io.EOF {
					t.Fatalf("connection %d: want EOF after the response, got %v", round+1, err)
				}
				_ = c.Close()
			}
		})
	}
}

// dialFromWhenFree retries while the client stack still holds src for the
// previous connection (its LAST_ACK), which is the client's own business.
func dialFromWhenFree(ctx context.Context, cs *gstack.Stack, src, dst netip.AddrPort) (*gonet.TCPConn, error) {
	for {
		c, err := dialFrom(ctx, cs, src, dst)
		if oe, ok := err.(*net.OpError); ok && oe.Op == "bind" && ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		return c, err
	}
}
