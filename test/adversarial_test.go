package test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tungate/tungate/control"
	"github.com/tungate/tungate/internal/lab"
)

const (
	// advPort is allowed by the gateway and served by the server, so a
	// crafted packet that slipped through would have somewhere to go.
	advPort = 47400
	// advCount crafted packets per case: enough that a leak of some of
	// them cannot hide, few enough that the decision log budget
	// (1000/s) keeps every line.
	advCount = 20
	// advQuiet is how long a case waits, once the gateway has its packets,
	// for anything to come out on the server's side. The gateway forwards
	// within microseconds; this bounds the wait, it asserts no speed.
	advQuiet = 750 * time.Millisecond
)

// TCP flag bits.
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpPSH = 0x08
	tcpACK = 0x10
	tcpURG = 0x20
)

// TestAdversarialTCPFlags sends packets no connection can produce (NULL,
// XMAS, SYN+FIN, FIN alone) and an ACK without any handshake to an allowed,
// served port, from the client's real address, crafted on a raw socket.
// For each it checks that the packets reached the gateway's TUN, that none
// of them (nor anything the gateway made of them) arrives at the server,
// and that the gateway counts them as invalid (tungate conntrack --stats).
// A real connection afterwards shows that the server-side sniffer does see
// what the gateway forwards, so its silence before means something.
func TestAdversarialTCPFlags(t *testing.T) {
	l := newLab(t)
	sock := filepath.Join(t.TempDir(), "tungate.sock")
	gw := startGateway(t, l, gatewayConfigAt(sock, allowTCPRule("adv", advPort)))

	dst := netip.AddrPortFrom(lab.ServerV4, advPort)
	serve(t, l.Server, dst, echo)

	toServer := func(p pktInfo) bool { return p.dst == dst }
	atServer := startSniffer(t, l.Server, lab.ServerIf, toServer)
	atTun := startSniffer(t, l.Gateway, tunName, toServer)
	raw := newRawSender(t, l.Client)

	cases := []struct {
		name  string
		flags uint8
	}{
		{"NULL", 0},
		{"XMAS", tcpFIN | tcpPSH | tcpURG},
		{"SYN+FIN", tcpSYN | tcpFIN},
		{"FIN", tcpFIN},
		{"stateless-ACK", tcpACK},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := netip.AddrPortFrom(lab.ClientV4, uint16(41000+i))
			fromCase := func(p pktInfo) bool { return p.src == src && p.flags == c.flags }
			before := conntrackStats(t, l, sock)
			serverBefore := atServer.count(nil)
			logMark := len(gw.Logs())

			buf := make([]byte, 64)
			for range advCount {
				seg := tcpSegment{src: src, dst: dst, flags: c.flags, seq: mrand.Uint32(), win: 64240}
				if c.flags&tcpACK != 0 {
					seg.ack = mrand.Uint32()
				}
				if err := raw.send(buildTCP4(buf, seg), dst.Addr()); err != nil {
					t.Fatalf("send crafted %s: %v", c.name, err)
				}
			}
			// The packets must have entered tungate, or the rest proves
			// nothing.
			if n := atTun.waitCount(fromCase, advCount, 5*time.Second); n < advCount {
				t.Fatalf("only %d of %d crafted %s packets reached %s; the lab, not the gateway, lost them",
					n, advCount, c.name, tunName)
			}
			time.Sleep(advQuiet)

			if leaked := atServer.since(serverBefore, nil); len(leaked) > 0 {
				t.Errorf("%d packets reached the server on %s after %d crafted %s packets; the gateway must drop them:\n%s",
					len(leaked), dst, advCount, c.name, formatPkts(leaked))
			}
			after := conntrackStats(t, l, sock)
			logged := invalidLogLines(gw.Logs()[logMark:], src, dst)
			if d := after.Invalid - before.Invalid; d < advCount {
				// An operator must be able to see a scan; dropping it
				// silently is not enough.
				t.Errorf("tungate conntrack --stats: invalid rose by %d after %d crafted %s packets, want at least %d; "+
					"the packets reached %s and were dropped, but neither the invalid counter nor the decision log "+
					"(%d lines with reason=invalid for %s) shows it (before: %v; after: %v)",
					d, advCount, c.name, advCount, tunName, logged, src, before, after)
			}
			if c.flags == tcpACK && logged < advCount {
				t.Errorf("decisions = \"all\": %d log lines with reason=invalid for %s -> %s, want %d", logged, src, dst, advCount)
			}
			t.Logf("%s: %d sent, %d at %s, %d at the server, invalid +%d, %d invalid log lines",
				c.name, advCount, atTun.count(fromCase), tunName, atServer.count(nil)-serverBefore,
				after.Invalid-before.Invalid, logged)
		})
	}

	// Positive control: what the gateway does forward, the sniffer sees.
	mark := atServer.count(nil)
	assertWorks(t, l, dst, "a real connection after the crafted packets")
	synFromGW := func(p pktInfo) bool { return p.src.Addr() == lab.GatewayWANV4 && p.flags == tcpSYN }
	if n := atServer.waitSince(mark, synFromGW, 1, 5*time.Second); n < 1 {
		t.Errorf("the server-side sniffer did not see the gateway's SYN of a real connection; its silence above proves nothing")
	}
}

// conntrackStats runs `tungate conntrack --stats --json` in the gateway
// namespace, as an operator would.
func conntrackStats(t *testing.T, l *lab.Lab, sock string) control.Stats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := l.Gateway.Command(ctx, tungateBin, "conntrack", "-s", sock, "--stats", "--json")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("tungate conntrack --stats --json: %v\n%s%s", err, out.String(), errOut.String())
	}
	var st control.Stats
	if err := json.Unmarshal(out.Bytes(), &st); err != nil {
		t.Fatalf("tungate conntrack --stats --json: %v\n%s", err, out.String())
	}
	return st
}

// invalidLogLines counts decision lines with reason "invalid" for src -> dst.
func invalidLogLines(lines []string, src, dst netip.AddrPort) int {
	n := 0
	for _, line := range lines {
		r, ok := lab.ParseLog(line)
		if ok && r["msg"] == "decision" && r["reason"] == "invalid" && r["src"] == src.String() && r["dst"] == dst.String() {
			n++
		}
	}
	return n
}

// tcpSegment is one crafted TCP/IPv4 segment without payload.
type tcpSegment struct {
	src, dst netip.AddrPort
	flags    uint8
	seq, ack uint32
	win      uint16
}

// buildTCP4 writes s as a complete IPv4 packet with correct checksums into
// b (at least 40 bytes) and returns it. The gateway checks both checksums
// before it looks at flags, so a wrong one would be dropped for the wrong
// reason.
func buildTCP4(b []byte, s tcpSegment) []byte {
	b = b[:40]
	clear(b)
	ip, tcp := b[:20], b[20:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], 40)
	binary.BigEndian.PutUint16(ip[4:], uint16(mrand.Uint32()))
	binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
	ip[8] = 64
	ip[9] = unix.IPPROTO_TCP
	src, dst := s.src.Addr().As4(), s.dst.Addr().As4()
	copy(ip[12:], src[:])
	copy(ip[16:], dst[:])
	binary.BigEndian.PutUint16(ip[10:], ^onesSum(0, ip))

	binary.BigEndian.PutUint16(tcp[0:], s.src.Port())
	binary.BigEndian.PutUint16(tcp[2:], s.dst.Port())
	binary.BigEndian.PutUint32(tcp[4:], s.seq)
	binary.BigEndian.PutUint32(tcp[8:], s.ack)
	tcp[12] = 5 << 4
	tcp[13] = s.flags
	binary.BigEndian.PutUint16(tcp[14:], s.win)
	var pseudo [12]byte
	copy(pseudo[0:], src[:])
	copy(pseudo[4:], dst[:])
	pseudo[9] = unix.IPPROTO_TCP
	binary.BigEndian.PutUint16(pseudo[10:], uint16(len(tcp)))
	binary.BigEndian.PutUint16(tcp[16:], ^onesSum(onesSum(0, pseudo[:]), tcp))
	return b
}

// onesSum adds b to the folded ones' complement sum acc (RFC 1071).
func onesSum(acc uint16, b []byte) uint16 {
	s := uint32(acc)
	for len(b) >= 2 {
		s += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// rawSender sends hand-built IPv4 packets from inside a namespace; the
// kernel takes the IP header as given (IPPROTO_RAW implies IP_HDRINCL), so
// sources can be spoofed and flags can be anything.
type rawSender struct{ fd int }

func newRawSender(t *testing.T, ns lab.NS) *rawSender {
	t.Helper()
	var fd int
	err := ns.Do(func() (err error) {
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
		return err
	})
	if err != nil {
		t.Fatalf("raw socket in %s: %v", ns.Name, err)
	}
	// Closed before the lab's cleanup deletes the namespace (cleanups run
	// last-registered first).
	t.Cleanup(func() { unix.Close(fd) })
	return &rawSender{fd: fd}
}

func (r *rawSender) send(pkt []byte, dst netip.Addr) error {
	for {
		err := unix.Sendto(r.fd, pkt, 0, &unix.SockaddrInet4{Addr: dst.As4()})
		if err != unix.EINTR {
			return err
		}
	}
}

// pktInfo is what the sniffer keeps of one TCP/IPv4 packet.
type pktInfo struct {
	src, dst netip.AddrPort
	flags    uint8
}

func (p pktInfo) String() string {
	return fmt.Sprintf("%s > %s flags=%s", p.src, p.dst, flagNames(p.flags))
}

func flagNames(f uint8) string {
	var s []string
	for _, n := range []struct {
		bit  uint8
		name string
	}{{tcpFIN, "FIN"}, {tcpSYN, "SYN"}, {tcpRST, "RST"}, {tcpPSH, "PSH"}, {tcpACK, "ACK"}, {tcpURG, "URG"}} {
		if f&n.bit != 0 {
			s = append(s, n.name)
		}
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, "+")
}

func formatPkts(ps []pktInfo) string {
	const show = 20
	var b strings.Builder
	for i, p := range ps {
		if i == show {
			fmt.Fprintf(&b, "  ... and %d more\n", len(ps)-show)
			break
		}
		fmt.Fprintf(&b, "  %v\n", p)
	}
	return b.String()
}

// sniffer records the TCP/IPv4 packets an interface inside a namespace
// receives or sends (AF_PACKET, so nothing the stack does can hide them)
// that keep matches.
type sniffer struct{ *packetTap[pktInfo] }

func startSniffer(t *testing.T, ns lab.NS, ifName string, keep func(pktInfo) bool) *sniffer {
	t.Helper()
	// Headers are enough; parseTCP4 reads them off the truncated prefix.
	return &sniffer{startPacketTap(t, "sniffer", ns, ifName, 256, parseTCP4, keep)}
}

// parseTCP4 reads the addresses, ports and flags of a TCP/IPv4 packet.
func parseTCP4(b []byte) (pktInfo, bool) {
	if len(b) < 20 || b[0]>>4 != 4 || b[9] != unix.IPPROTO_TCP {
		return pktInfo{}, false
	}
	ihl := int(b[0]&0x0f) * 4
	if ihl < 20 || len(b) < ihl+14 {
		return pktInfo{}, false
	}
	tcp := b[ihl:]
	return pktInfo{
		src:   netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[12:16])), binary.BigEndian.Uint16(tcp[0:])),
		dst:   netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[16:20])), binary.BigEndian.Uint16(tcp[2:])),
		flags: tcp[13] & 0x3f,
	}, true
}

// count is how many kept packets match (all when match is nil).
func (s *sniffer) count(match func(pktInfo) bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return countMatching(s.kept, match)
}

// since returns the kept packets after the first mark that match.
func (s *sniffer) since(mark int, match func(pktInfo) bool) []pktInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []pktInfo
	for _, p := range s.kept[mark:] {
		if match == nil || match(p) {
			out = append(out, p)
		}
	}
	return out
}

// waitCount waits up to timeout for want matching packets and returns how
// many there are.
func (s *sniffer) waitCount(match func(pktInfo) bool, want int, timeout time.Duration) int {
	return s.waitSince(0, match, want, timeout)
}

// waitSince is waitCount over the packets after the first mark.
func (s *sniffer) waitSince(mark int, match func(pktInfo) bool, want int, timeout time.Duration) int {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		n := countMatching(s.kept[mark:], match)
		changed := s.changed
		s.mu.Unlock()
		if n >= want {
			return n
		}
		select {
		case <-changed:
		case <-deadline.C:
			return n
		}
	}
}

func countMatching(ps []pktInfo, match func(pktInfo) bool) int {
	if match == nil {
		return len(ps)
	}
	n := 0
	for _, p := range ps {
		if match(p) {
			n++
		}
	}
	return n
}
