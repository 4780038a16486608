package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"github.com/tungate/tungate/internal/lab"
)

// Outcomes a probe reports. They name what the client saw, so the table
// reads the same whichever side caused it.
const (
	Connected = "connected"
	Refused   = "refused"     // TCP RST answering the SYN, or ICMP port unreachable
	Timeout   = "timeout"     // nothing came back in time
	Reset     = "reset"       // an established connection was reset
	Closed    = "closed"      // an established connection was closed cleanly
	Echo      = "echo"        // the UDP datagram came back unchanged
	NoReply   = "no reply"    // no ICMP echo reply or UDP answer
	Reply     = "reply"       // an ICMP echo reply
	Unreach   = "unreachable" // ICMP host or network unreachable
	Cancelled = "interrupted" // the demo was stopped before the probe ended
)

// classify names the outcome err stands for.
func classify(err error) string {
	var ne net.Error
	switch {
	case err == nil:
		return Connected
	case errors.Is(err, context.Canceled):
		return Cancelled
	case errors.Is(err, syscall.ECONNREFUSED):
		return Refused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return Reset
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return Closed
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return Timeout
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return Unreach
	case errors.Is(err, lab.ErrNoReply):
		return NoReply
	}
	return "error: " + err.Error()
}

// tcpConnect dials dst from ns and reports how the handshake ended.
func tcpConnect(ctx context.Context, ns lab.NS, dst netip.AddrPort, timeout time.Duration) string {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := ns.Dial(ctx, "tcp", dst.String())
	if err == nil {
		c.Close()
	}
	return classify(err)
}

// httpGet fetches / from dst and reports "200" when the demo's server
// answered, or what went wrong instead.
func httpGet(ctx context.Context, ns lab.NS, dst netip.AddrPort, timeout time.Duration) string {
	return httpGetHost(ctx, ns, dst, "", timeout)
}

// httpGetHost is httpGet with the Host header set to host ("" for dst).
func httpGetHost(ctx context.Context, ns lab.NS, dst netip.AddrPort, host string, timeout time.Duration) string {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return ns.Dial(ctx, network, addr)
		},
		DisableKeepAlives: true,
		Proxy:             nil, // never a proxy from the environment
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+dst.String()+"/", nil)
	if err != nil {
		return "error: " + err.Error()
	}
	req.Host = host
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return classify(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return fmt.Sprintf("%d, then %s", resp.StatusCode, classify(err))
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Sprintf("%d", resp.StatusCode)
	}
	if string(body) != Greeting {
		return fmt.Sprintf("200 with body %q", body)
	}
	return "200"
}

// rawRequest connects to dst, sends req and reads until the connection
// ends; it reports how it ended ("closed" after a full answer) or that
// the handshake already failed ("connect: ...").
func rawRequest(ctx context.Context, ns lab.NS, dst netip.AddrPort, req string, timeout time.Duration) string {
	return overTCP(ctx, ns, dst, timeout, func(ctx context.Context, c net.Conn) string {
		deadline, _ := ctx.Deadline()
		c.SetDeadline(deadline)
		if _, err := io.WriteString(c, req); err != nil {
			return classify(err)
		}
		if _, err := io.Copy(io.Discard, c); err != nil {
			return classify(err)
		}
		return Closed
	})
}

// overTCP connects to dst within timeout and reports what probe makes of
// the connection (probe's ctx ends with the timeout too), or that the
// handshake already failed ("connect: ...").
func overTCP(ctx context.Context, ns lab.NS, dst netip.AddrPort, timeout time.Duration, probe func(context.Context, net.Conn) string) string {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := ns.Dial(ctx, "tcp", dst.String())
	if err != nil {
		return "connect: " + classify(err)
	}
	defer c.Close()
	return probe(ctx, c)
}

// udpEcho sends one datagram per attempt to dst and reports "echo" once it
// comes back unchanged.
func udpEcho(ctx context.Context, ns lab.NS, dst netip.AddrPort, attempts int, wait time.Duration) string {
	c, err := ns.Dial(ctx, "udp", dst.String())
	if err != nil {
		return "error: " + err.Error()
	}
	defer c.Close()
	var nonce [8]byte
	rand.Read(nonce[:])
	msg := "tungate demo " + hex.EncodeToString(nonce[:])
	buf := make([]byte, 512)
	outcome := NoReply
	for range attempts {
		if ctx.Err() != nil {
			return classify(ctx.Err())
		}
		if _, err := io.WriteString(c, msg); err != nil {
			return classify(err)
		}
		c.SetReadDeadline(time.Now().Add(wait))
		for {
			n, err := c.Read(buf)
			if err != nil {
				if outcome = classify(err); outcome == Timeout {
					outcome = NoReply
				}
				break
			}
			if string(buf[:n]) == msg {
				return Echo
			}
		}
		if outcome == Refused {
			return Refused
		}
	}
	return outcome
}

// ping sends one echo request from ns to dst.
func ping(ctx context.Context, ns lab.NS, dst netip.Addr, timeout time.Duration) string {
	err := ns.Ping(ctx, dst, timeout)
	switch {
	case err == nil:
		return Reply
	case errors.Is(err, lab.ErrNoReply):
		return NoReply
	case strings.Contains(err.Error(), "unreachable"):
		return Unreach
	}
	return classify(err)
}
