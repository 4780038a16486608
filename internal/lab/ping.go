package lab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// ErrNoReply is returned by Ping when no echo reply arrived in time.
var ErrNoReply = errors.New("no echo reply")

// Ping sends one ICMP or ICMPv6 echo request to dst from a raw socket inside
// the namespace and waits up to timeout (and no longer than ctx) for the
// matching reply. A destination-unreachable error quoting the request ends
// the wait early with an error that says so.
func (ns NS) Ping(ctx context.Context, dst netip.Addr, timeout time.Duration) error {
	return ns.PingData(ctx, dst, []byte("tungate-lab-ping"), timeout)
}

// PingData is Ping with data as the echo payload: the reply must carry
// the same bytes. A payload beyond the path MTU makes the kernel fragment
// the request, as `ping -s` does.
func (ns NS) PingData(ctx context.Context, dst netip.Addr, data []byte, timeout time.Duration) error {
	dst = dst.Unmap()
	network, laddr, proto := "ip4:icmp", "0.0.0.0", 1
	var reqType, replyType icmp.Type = ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply
	if dst.Is6() {
		network, laddr, proto = "ip6:ipv6-icmp", "::", 58
		reqType, replyType = ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply
	}
	pc, err := ns.ListenPacket(network, laddr)
	if err != nil {
		return fmt.Errorf("lab: icmp socket in %s: %w", ns.Name, err)
	}
	defer pc.Close()

	var rnd [4]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return err
	}
	id := int(binary.BigEndian.Uint16(rnd[:2]))
	seq := int(binary.BigEndian.Uint16(rnd[2:]))
	// The kernel fills in the ICMPv6 checksum on raw sockets, so no pseudo
	// header is needed there.
	req, err := (&icmp.Message{Type: reqType, Body: &icmp.Echo{ID: id, Seq: seq, Data: data}}).Marshal(nil)
	if err != nil {
		return err
	}

	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := pc.SetDeadline(deadline); err != nil {
		return err
	}
	// A cancelled ctx unblocks the read by moving the deadline to now.
	stop := context.AfterFunc(ctx, func() { pc.SetDeadline(time.Now()) })
	defer stop()

	if _, err := pc.WriteTo(req, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
		return fmt.Errorf("lab: ping %s: %w", dst, err)
	}
	buf := make([]byte, 65536)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return fmt.Errorf("lab: ping %s: %w", dst, ErrNoReply)
			}
			return fmt.Errorf("lab: ping %s: %w", dst, err)
		}
		m, err := icmp.ParseMessage(proto, buf[:n])
		if err != nil {
			continue
		}
		switch body := m.Body.(type) {
		case *icmp.Echo:
			src, _ := netip.AddrFromSlice(from.(*net.IPAddr).IP)
			if m.Type == replyType && body.ID == id && body.Seq == seq && src.Unmap() == dst {
				if !bytes.Equal(body.Data, data) {
					return fmt.Errorf("lab: ping %s: reply carries %d bytes, not the %d sent", dst, len(body.Data), len(data))
				}
				return nil
			}
		case *icmp.DstUnreach:
			if quotesEcho(body.Data, dst.Is6(), id, seq) {
				return fmt.Errorf("lab: ping %s: destination unreachable (code %d) from %s", dst, m.Code, from)
			}
		}
	}
}

// quotesEcho reports whether the datagram quoted in an ICMP error is our
// echo request.
func quotesEcho(b []byte, v6 bool, id, seq int) bool {
	hl, typ := 0, byte(8)
	if v6 {
		hl, typ = 40, 128
	} else if len(b) > 0 {
		hl = int(b[0]&0x0f) * 4
	}
	if len(b) < hl+8 {
		return false
	}
	e := b[hl:]
	return e[0] == typ && int(binary.BigEndian.Uint16(e[4:])) == id && int(binary.BigEndian.Uint16(e[6:])) == seq
}
