package test

import (
	"context"
	"crypto/tls"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tungate/tungate/internal/lab"
)

// clientHelloBytes is the first flight of a real TLS client for sni.
func clientHelloBytes(t *testing.T, sni string) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() { // ends when the pipe closes
		_ = tls.Client(a, &tls.Config{ServerName: sni, InsecureSkipVerify: true}).Handshake()
	}()
	buf := make([]byte, 16384)
	_ = b.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := b.Read(buf)
	if err != nil || n < 100 {
		t.Fatalf("capturing a ClientHello: %d bytes, %v", n, err)
	}
	return buf[:n]
}

// TestStalledClientHello: a client that sends the start of a ClientHello
// for a blocked name and then stalls past [inspect] timeout is refused
// (on_incomplete defaults to drop) and nothing reaches the server; the
// same bytes sent whole for an allowed name go through. Before, the stall
// made the name "absent" and the allow rule let the flow through.
func TestStalledClientHello(t *testing.T) {
	l := newLab(t)
	gw := startGateway(t, l, gatewayConfig(t, sniRuleSet()))
	cert, _ := testCert(t, allowedName, blockedName)
	dst := netip.AddrPortFrom(lab.ServerV4, tlsPort)
	rec := serveTLS(t, l.Server, dst, cert)

	dial := func() net.Conn {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := l.Client.Dial(ctx, "tcp", dst.String())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// Positive control: the whole ClientHello for the allowed name reaches
	// the server.
	c := dial()
	if _, err := c.Write(clientHelloBytes(t, allowedName)); err != nil {
		t.Fatal(err)
	}
	if _, ok := rec.waitFor(func(got [][]byte) bool { return len(got) > 0 && len(got[0]) > 0 }, 10*time.Second); !ok {
		t.Fatal("the allowed ClientHello did not reach the server")
	}
	c.Close()
	mark := len(rec.received())

	c = dial()
	defer c.Close()
	hello := clientHelloBytes(t, blockedName)
	if _, err := c.Write(hello[:40]); err != nil { // the record header and the start of the hello, no name yet
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Read(make([]byte, 64))
	if err == nil || !strings.Contains(err.Error(), "reset") {
		t.Errorf("stalled ClientHello: read %v; want the gateway to reset the connection", err)
	}
	if _, ok := findDecision(gw, map[string]string{"action": "drop", "dst": dst.String(), "reason": "l7"}, 5*time.Second); !ok {
		t.Error("no drop decision for the stalled ClientHello")
	}
	if got := rec.received()[mark:]; len(got) != 0 {
		t.Errorf("the server saw %d connections after the stalled ClientHello: %s", len(got), quoteConns(got))
	}
}
