package test

import (
	"bytes"
	"context"
	"net/netip"
	"regexp"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tungate/tungate/internal/lab"
)

const (
	udpFloodPort  = 7411
	udpMarkerPort = 7412
	udpFloodSize  = 64
	udpFloodFor   = time.Second
	udpFloodMax   = 2_000_000 // datagrams; bounds the flood on a fast machine
)

// TestUDPStaleBacklogBounded floods one UDP flow faster than the gateway
// relays it, stops, and sends a marker on another flow. Datagrams of the
// flood that reach the server after the marker were queued somewhere on
// the way when the sender stopped, so their number is bounded by the
// queues: the TUN device's, the flow's queue in the gateway
// ([stack] udp_receive_buffer, 64 KiB = 1024 datagrams of 64 bytes), and
// the server socket's. (The veths' backlogs drain at kernel speed into
// the TUN queue, which drops what does not fit.) With gVisor's default
// (212 KiB, 3,392 datagrams) a flood kept arriving for tens of
// milliseconds, and a new iperf3 UDP test paired with those late
// datagrams and hung; this test saw up to 2,954 late datagrams with that
// setting, 0-1,024 with the default.
func TestUDPStaleBacklogBounded(t *testing.T) {
	l := newLab(t)
	startGateway(t, l, gatewayConfig(t, `
[[rule]]
name     = "udp-flood"
proto    = "udp"
dst_port = [7411, 7412]
action   = "allow"
`))
	qlen := tunQueueLen(t, l)

	flood, err := l.Server.ListenPacket("udp4", netip.AddrPortFrom(lab.ServerV4, udpFloodPort).String())
	if err != nil {
		t.Fatal(err)
	}
	defer flood.Close()
	marker, err := l.Server.ListenPacket("udp4", netip.AddrPortFrom(lab.ServerV4, udpMarkerPort).String())
	if err != nil {
		t.Fatal(err)
	}
	defer marker.Close()

	var markerSeen atomic.Bool
	var received, late atomic.Int64
	var lastFlood atomic.Int64 // unix nanoseconds of the latest flood datagram
	readerDone := make(chan struct{})
	go func() { // owned by this test: ends when flood is closed
		defer close(readerDone)
		buf := make([]byte, 2048)
		for {
			n, _, err := flood.ReadFrom(buf)
			if err != nil {
				return
			}
			if n == udpFloodSize && buf[0] == 'F' {
				received.Add(1)
				lastFlood.Store(time.Now().UnixNano())
				if markerSeen.Load() {
					late.Add(1)
				}
			}
		}
	}()
	markerDone := make(chan struct{})
	go func() { // owned by this test: ends at the first marker or when marker is closed
		defer close(markerDone)
		buf := make([]byte, 64)
		for {
			n, _, err := marker.ReadFrom(buf)
			if err != nil {
				return
			}
			if bytes.Equal(buf[:n], []byte("marker")) {
				markerSeen.Store(true)
				return
			}
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := l.Client.Dial(ctx, "udp4", netip.AddrPortFrom(lab.ServerV4, udpFloodPort).String())
	if err != nil {
		t.Fatal(err)
	}
	payload := bytes.Repeat([]byte{'F'}, udpFloodSize)
	sent := 0
	for end := time.Now().Add(udpFloodFor); sent < udpFloodMax && time.Now().Before(end); sent++ {
		_, _ = c.Write(payload) // ENOBUFS and the like are part of a flood
	}
	c.Close()

	// The marker goes out on a second flow right after the last datagram;
	// a few copies, as the first datagram of a flow may be lost too.
	m, err := l.Client.Dial(ctx, "udp4", netip.AddrPortFrom(lab.ServerV4, udpMarkerPort).String())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for i := 0; i < 50 && !markerSeen.Load(); i++ {
		_, _ = m.Write([]byte("marker"))
		time.Sleep(20 * time.Millisecond)
	}
	if !markerSeen.Load() {
		t.Fatal("the marker never reached the server")
	}
	// Wait until the flood has stopped arriving for a while.
	for quiet := time.Now(); time.Since(quiet) < 30*time.Second; time.Sleep(50 * time.Millisecond) {
		if time.Since(time.Unix(0, lastFlood.Load())) > 500*time.Millisecond {
			break
		}
	}
	flood.Close()
	marker.Close()
	<-readerDone
	<-markerDone

	gatewayQueue := 64 << 10 / udpFloodSize
	serverQueue := 212992 / 512 // the server socket's default rcvbuf in truesize; small datagrams cost >= 512 bytes each
	bound := int64(qlen + gatewayQueue + serverQueue)
	t.Logf("sent %d datagrams in %s, server received %d, %d after the marker (bound %d = TUN queue %d + gateway queue %d + server socket %d)",
		sent, udpFloodFor, received.Load(), late.Load(), bound, qlen, gatewayQueue, serverQueue)
	if received.Load() == 0 {
		t.Fatal("no datagram of the flood reached the server")
	}
	if late.Load() > bound {
		t.Errorf("%d datagrams of the flood arrived after the marker, more than the queues on the way hold (%d)", late.Load(), bound)
	}
}

// tunQueueLen is the gateway TUN device's transmit queue length, which
// bounds what the kernel holds for tungate to read.
func tunQueueLen(t *testing.T, l *lab.Lab) int {
	t.Helper()
	out, err := ipOut(t, l.Gateway, "link", "show", tunName)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`qlen (\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no qlen in %q", out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}
