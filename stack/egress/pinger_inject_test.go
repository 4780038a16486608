package egress

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/tungate/tungate/internal/testenv"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// TestPingerTakesOnlyItsReply injects echo replies that are almost the one
// a pending Echo waits for, then the real one, and checks that only the
// real one is handed back. The namespace's kernel does not answer echoes
// itself, so every reply is the test's.
func TestPingerTakesOnlyItsReply(t *testing.T) {
	ns := testNetns(t)
	netnsSysctl(t, ns, "net.ipv4.icmp_echo_ignore_all", "1")
	netnsSysctl(t, ns, "net.ipv6.icmp.echo_ignore_all", "1")
	testenv.NoLeak(t)
	families := []struct {
		name       string
		dst, other netip.Addr
		v6         bool
	}{
		{"v4", netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("192.0.2.9"), false},
		{"v6", netip.MustParseAddr("::1"), netip.MustParseAddr("2001:db8::9"), true},
	}
	inNetns(t, ns, func() {
		p, err := NewPinger(Config{}, nil)
		if err != nil {
			t.Error(err)
			return
		}
		defer p.Close()
		for _, fam := range families {
			f, err := p.family(context.Background(), fam.v6)
			if err != nil {
				t.Errorf("%s: %v", fam.name, err)
				continue
			}
			observer := openObserver(t, fam.v6)
			if observer == nil {
				continue
			}
			defer observer.Close()

			const seq = 5
			result := make(chan []byte, 1)
			go func() { // ends when its Echo returns
				r, err := p.Echo(context.Background(), fam.dst, 1, seq, []byte("request"), 10*time.Second)
				if err != nil {
					t.Errorf("%s: Echo: %v", fam.name, err)
				}
				result <- r
			}()
			id := waitPending(t, f, 1)

			requestType := icmp.Type(ipv4.ICMPTypeEcho)
			if fam.v6 {
				requestType = ipv6.ICMPTypeEchoRequest
			}
			injections := []struct {
				name    string
				src     netip.Addr
				typ     icmp.Type
				code    int
				id, seq int
				corrupt bool
				// reachesSocket: the kernel queues it on an unfiltered raw
				// socket, so ignoring it is the Pinger's doing.
				reachesSocket bool
			}{
				{"other identifier", fam.dst, echoReplyType(fam.v6), 0, int(id + 1), seq, false, true},
				{"other sequence", fam.dst, echoReplyType(fam.v6), 0, int(id), seq + 1, false, true},
				{"other source", fam.other, echoReplyType(fam.v6), 0, int(id), seq, false, true},
				{"non-zero code", fam.dst, echoReplyType(fam.v6), 1, int(id), seq, false, true},
				{"echo request", fam.dst, requestType, 0, int(id), seq, false, true},
				// IPv6 raw sockets drop a bad checksum in the kernel.
				{"bad checksum", fam.dst, echoReplyType(fam.v6), 0, int(id), seq, true, !fam.v6},
				{"the reply", fam.dst, echoReplyType(fam.v6), 0, int(id), seq, false, true},
			}
			for _, in := range injections {
				m := icmp.Message{Type: in.typ, Code: in.code, Body: &icmp.Echo{ID: in.id, Seq: in.seq, Data: []byte(in.name)}}
				injectICMP(t, in.src, fam.dst, &m, in.corrupt)
			}
			if got, want := string(<-result), "the reply"; got != want {
				t.Errorf("%s: Echo: got %q; want %q", fam.name, got, want)
			}

			seen := observe(t, observer, 300*time.Millisecond)
			for _, in := range injections {
				if got, want := seen[in.name], in.reachesSocket; got != want {
					t.Errorf("%s: %q reached a raw socket: got %v; want %v", fam.name, in.name, got, want)
				}
			}
		}
	})
}

// openObserver opens a raw ICMP socket without filter, to see what the
// kernel queues on raw sockets.
func openObserver(t *testing.T, v6 bool) *net.IPConn {
	t.Helper()
	network, laddr := "ip4:icmp", "0.0.0.0"
	if v6 {
		network, laddr = "ip6:ipv6-icmp", "::"
	}
	c, err := net.ListenPacket(network, laddr)
	if err != nil {
		t.Errorf("observer socket: %v", err)
		return nil
	}
	return c.(*net.IPConn)
}

// observe collects the payloads of the echo messages c receives until
// nothing came for quiet.
func observe(t *testing.T, c *net.IPConn, quiet time.Duration) map[string]bool {
	t.Helper()
	seen := map[string]bool{}
	buf := make([]byte, 1500)
	for {
		c.SetReadDeadline(time.Now().Add(quiet))
		n, _, err := c.ReadFromIP(buf) // strips the IPv4 header, unlike Read
		if err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("observer: %v", err)
			}
			return seen
		}
		if n > 8 {
			seen[string(buf[8:n])] = true
		}
	}
}

// injectICMP sends m from src to dst with a hand-built IP header, so src
// may be any address; corrupt flips a bit of the ICMP checksum.
func injectICMP(t *testing.T, src, dst netip.Addr, m *icmp.Message, corrupt bool) {
	t.Helper()
	var psh []byte
	if src.Is6() {
		psh = icmp.IPv6PseudoHeader(src.AsSlice(), dst.AsSlice())
	}
	msg, err := m.Marshal(psh)
	if err != nil {
		t.Errorf("marshal: %v", err)
		return
	}
	if corrupt {
		msg[3] ^= 1
	}
	var pkt []byte
	var sa unix.Sockaddr
	family := unix.AF_INET
	if src.Is6() {
		family = unix.AF_INET6
		pkt = make([]byte, 40, 40+len(msg))
		pkt[0] = 6 << 4
		binary.BigEndian.PutUint16(pkt[4:], uint16(len(msg)))
		pkt[6] = 58 // next header: ICMPv6
		pkt[7] = 64 // hop limit
		copy(pkt[8:], src.AsSlice())
		copy(pkt[24:], dst.AsSlice())
		sa = &unix.SockaddrInet6{Addr: dst.As16()}
	} else {
		// The kernel fills in total length and header checksum.
		pkt = make([]byte, 20, 20+len(msg))
		pkt[0] = 4<<4 | 5
		pkt[8] = 64 // TTL
		pkt[9] = 1  // protocol: ICMP
		copy(pkt[12:], src.AsSlice())
		copy(pkt[16:], dst.AsSlice())
		sa = &unix.SockaddrInet4{Addr: dst.As4()}
	}
	pkt = append(pkt, msg...)
	fd, err := unix.Socket(family, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		t.Errorf("IPPROTO_RAW socket: %v", err)
		return
	}
	defer unix.Close(fd)
	if err := unix.Sendto(fd, pkt, 0, sa); err != nil {
		t.Errorf("inject %s -> %s: %v", src, dst, err)
	}
}
