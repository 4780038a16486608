package test

import (
	"encoding/binary"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tungate/tungate/internal/lab"
)

// rawTCPSrc is the client-side address crafted flows come from. No
// interface owns it, so the client kernel never sees a segment of those
// flows as its own and cannot answer them with RSTs; the gateway reaches it
// through a static neighbour entry pointing at the client's eth0, where an
// AF_PACKET socket reads the replies.
var rawTCPSrc = netip.MustParseAddr("198.18.1.77")

// routeRawSrc makes the gateway deliver packets for rawTCPSrc to the
// client's eth0 without asking ARP (nobody would answer). The entry lives
// in the lab's gateway namespace and goes with it.
func routeRawSrc(t *testing.T, l *lab.Lab) {
	t.Helper()
	var mac net.HardwareAddr
	if err := l.Client.Do(func() error {
		ifi, err := net.InterfaceByName(lab.ClientIf)
		if err != nil {
			return err
		}
		mac = ifi.HardwareAddr
		return nil
	}); err != nil {
		t.Fatalf("client %s address: %v", lab.ClientIf, err)
	}
	if out, err := ipOut(t, l.Gateway, "neigh", "replace", rawTCPSrc.String(), "lladdr", mac.String(),
		"dev", lab.GatewayLANIf, "nud", "permanent"); err != nil {
		t.Fatalf("static neighbour for %s: %v (%s)", rawTCPSrc, err, out)
	}
}

// segment is one TCP/IPv4 segment as captured, with its payload.
type segment struct {
	src, dst netip.AddrPort
	flags    uint8
	seq, ack uint32
	payload  []byte
}

func (s segment) String() string {
	return fmt.Sprintf("%s > %s %s seq=%d ack=%d len=%d", s.src, s.dst, flagNames(s.flags), s.seq, s.ack, len(s.payload))
}

// parseSegment reads a whole TCP/IPv4 packet, payload included.
func parseSegment(b []byte) (segment, bool) {
	p, ok := parseTCP4(b)
	if !ok {
		return segment{}, false
	}
	ihl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:]))
	if total > len(b) || total < ihl+20 {
		return segment{}, false
	}
	tcp := b[ihl:total]
	off := int(tcp[12]>>4) * 4
	if off < 20 || off > len(tcp) {
		return segment{}, false
	}
	return segment{
		src: p.src, dst: p.dst, flags: p.flags,
		seq:     binary.BigEndian.Uint32(tcp[4:]),
		ack:     binary.BigEndian.Uint32(tcp[8:]),
		payload: append([]byte(nil), tcp[off:]...),
	}, true
}

// buildTCP4Data is buildTCP4 with a payload after the header: it lays out
// the header with buildTCP4, appends data, and redoes the lengths and both
// checksums over the longer packet.
func buildTCP4Data(s tcpSegment, data []byte) []byte {
	b := make([]byte, 40, 40+len(data))
	buildTCP4(b, s)
	b = append(b, data...)
	ip, tcp := b[:20], b[20:]
	binary.BigEndian.PutUint16(ip[2:], uint16(len(b)))
	ip[10], ip[11] = 0, 0
	binary.BigEndian.PutUint16(ip[10:], ^onesSum(0, ip))
	tcp[16], tcp[17] = 0, 0
	var pseudo [12]byte
	copy(pseudo[0:], ip[12:20])
	pseudo[9] = unix.IPPROTO_TCP
	binary.BigEndian.PutUint16(pseudo[10:], uint16(len(tcp)))
	binary.BigEndian.PutUint16(tcp[16:], ^onesSum(onesSum(0, pseudo[:]), tcp))
	return b
}

// segCapture keeps every TCP/IPv4 packet an interface inside a namespace
// sends or receives that keep matches, payload included (AF_PACKET: what
// the stack does with them cannot hide them).
type segCapture struct{ *packetTap[segment] }

func startSegCapture(t *testing.T, ns lab.NS, ifName string, keep func(segment) bool) *segCapture {
	t.Helper()
	// 65536 holds any IPv4 packet whole.
	return &segCapture{startPacketTap(t, "capture", ns, ifName, 65536, parseSegment, keep)}
}

// all returns a copy of what was kept so far.
func (c *segCapture) all() []segment {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]segment(nil), c.kept...)
}

// wait returns the first kept segment after mark that matches, waiting up
// to timeout; ok is false if none came.
func (c *segCapture) wait(mark int, match func(segment) bool, timeout time.Duration) (segment, int, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		for i := mark; i < len(c.kept); i++ {
			if match(c.kept[i]) {
				s := c.kept[i]
				c.mu.Unlock()
				return s, i, true
			}
		}
		changed := c.changed
		c.mu.Unlock()
		select {
		case <-changed:
		case <-deadline.C:
			return segment{}, 0, false
		}
	}
}

// rawFlow is one TCP connection from rawTCPSrc driven segment by segment:
// handshake, data at chosen sequence offsets in any order, then RST. The
// gateway's netstack is the peer (it terminates the client's TCP).
type rawFlow struct {
	t         *testing.T
	raw       *rawSender
	cap       *segCapture
	src, dst  netip.AddrPort
	isn       uint32 // ours
	peerNext  uint32 // the sequence number we acknowledge
	endOffset int    // one past the highest stream offset sent
}

// rawHandshake opens a flow from rawTCPSrc:sport to dst. The capture must
// keep the packets addressed to rawTCPSrc.
func rawHandshake(t *testing.T, raw *rawSender, c *segCapture, sport uint16, dst netip.AddrPort) (*rawFlow, error) {
	f := &rawFlow{t: t, raw: raw, cap: c, src: netip.AddrPortFrom(rawTCPSrc, sport), dst: dst, isn: mrand.Uint32()}
	mark := len(c.all())
	if err := f.send(tcpSYN, 0, nil); err != nil {
		return nil, err
	}
	synAck := func(s segment) bool {
		return s.src == f.dst && s.dst == f.src && s.flags&(tcpSYN|tcpACK) == tcpSYN|tcpACK && s.ack == f.isn+1
	}
	// The gateway dials the server before it answers; generous bound.
	sa, _, ok := c.wait(mark, synAck, 10*time.Second)
	if !ok {
		return nil, fmt.Errorf("no SYN-ACK from %s for %s (captured: %v)", f.dst, f.src, c.since(mark))
	}
	f.peerNext = sa.seq + 1
	if err := f.send(tcpACK, 0, nil); err != nil {
		return nil, err
	}
	// A flow left behind would keep the gateway's upstream socket open.
	t.Cleanup(func() { _ = f.send(tcpRST|tcpACK, f.endOffset, nil) })
	return f, nil
}

// since returns the segments kept after mark.
func (c *segCapture) since(mark int) []segment {
	all := c.all()
	if mark > len(all) {
		return nil
	}
	return all[mark:]
}

// send sends one segment carrying data at stream offset off (0 is the
// first data byte).
func (f *rawFlow) send(flags uint8, off int, data []byte) error {
	seq := f.isn
	if flags&tcpSYN == 0 {
		seq = f.isn + 1 + uint32(off)
	}
	seg := tcpSegment{src: f.src, dst: f.dst, flags: flags, seq: seq, win: 64240}
	if flags&tcpACK != 0 {
		seg.ack = f.peerNext
	}
	if end := off + len(data); end > f.endOffset {
		f.endOffset = end
	}
	return f.raw.send(buildTCP4Data(seg, data), f.dst.Addr())
}

// reset reports whether the peer reset the flow.
func (f *rawFlow) reset() bool {
	for _, s := range f.cap.all() {
		if s.src == f.dst && s.dst == f.src && s.flags&tcpRST != 0 {
			return true
		}
	}
	return false
}
