package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tungate/tungate/internal/lab"
	"github.com/tungate/tungate/stack/packet/packettest"
)

const (
	fragMatrixPort = 7431
	fragCaseSize   = 2500 // bytes of UDP payload: three fragments of 1,000 at most
)

// fragCase is one row of the fragment matrix: fragments the client sends
// raw, and whether the datagram must reach the server whole.
type fragCase struct {
	name  string
	v6    bool
	frags func(pkt []byte, id uint32) [][]byte
	pass  bool
	size  int // UDP payload bytes; 0: fragCaseSize
}

// fragMatrix is the adversarial fragment matrix. Each row's expected
// outcome is Linux's: reordered and duplicated fragments are reassembled,
// overlaps with other data drop the whole datagram (RFC 5722, and Linux
// for IPv4 since 2018), a datagram beyond 65,535 bytes is dropped, an
// IPv6 atomic fragment is a whole packet (RFC 6946), and a hop-by-hop
// header after the Fragment header is refused (RFC 8200 §4.1).
var fragMatrix = []fragCase{
	{name: "v4 in order", frags: split, pass: true},
	{name: "v4 reversed", frags: func(p []byte, id uint32) [][]byte { return reverse(split(p, id)) }, pass: true},
	{"v4 duplicate fragment", false, func(p []byte, id uint32) [][]byte {
		f := split(p, id)
		return [][]byte{f[0], f[1], f[1], f[2]}
	}, true, 0},
	{"v4 overlap with other data", false, func(p []byte, id uint32) [][]byte {
		f := split(p, id)
		return [][]byte{f[0], overlapping(f[1]), f[1], f[2]}
	}, false, 0},
	{"v4 beyond 65535 bytes", false, func(p []byte, id uint32) [][]byte {
		f := split(p, id)
		return [][]byte{f[0], f[1], beyondMax(f[1]), f[2]}
	}, false, 0},
	{name: "v6 in order", v6: true, frags: split, pass: true},
	{name: "v6 reversed", v6: true, frags: func(p []byte, id uint32) [][]byte { return reverse(split(p, id)) }, pass: true},
	{"v6 overlap with other data", true, func(p []byte, id uint32) [][]byte {
		f := split(p, id)
		return [][]byte{f[0], overlapping(f[1]), f[1], f[2]}
	}, false, 0},
	{"v6 atomic fragment", true, func(p []byte, id uint32) [][]byte {
		return packettest.Fragments(p, 65536, id) // one fragment: offset 0, no more
	}, true, 1000},
	{"v6 hop-by-hop after the fragment header", true, func(p []byte, id uint32) [][]byte {
		return [][]byte{hopByHopAfterFragment(packettest.Fragments(p, 65536, id)[0])}
	}, false, 1000},
}

// TestFragmentMatrix sends each row's fragments raw from the client and
// checks, after a control datagram that must pass has arrived, which rows
// reached the server, and that the gateway counted each refusal.
func TestFragmentMatrix(t *testing.T) {
	l := newLab(t)
	sock := filepath.Join(t.TempDir(), "tungate.sock")
	startGateway(t, l, gatewayConfigAt(sock, fmt.Sprintf(`
[[rule]]
name     = "frag-udp"
proto    = "udp"
dst_port = %d
action   = "allow"
`, fragMatrixPort)))

	got := serveTagged(t, l)
	raw4 := newRawSender(t, l.Client)
	raw6 := newRawSender6(t, l.Client)
	send := func(row int, c fragCase, id uint32) {
		src, dst := lab.ClientV4, lab.ServerV4
		if c.v6 {
			src, dst = lab.ClientV6, lab.ServerV6
		}
		size := c.size
		if size == 0 {
			size = fragCaseSize
		}
		pkt := packettest.IP(src, dst, packettest.UDP, packettest.UDPHdr(uint16(30000+row), fragMatrixPort, tagged(row, size)))
		for _, f := range c.frags(pkt, id) {
			var err error
			if c.v6 {
				err = raw6.send(f, dst)
			} else {
				err = raw4.send(f, dst)
			}
			if err != nil {
				t.Fatalf("%s: send: %v", c.name, err)
			}
		}
	}
	for i, c := range fragMatrix {
		send(i, c, uint32(0x1000+i))
	}
	// The positive control goes last in each family: once both arrived,
	// everything sent before them has been decided.
	control := len(fragMatrix)
	send(control, fragMatrix[0], 0x2000)
	send(control+1, fragMatrix[5], 0x2001)
	if !got.wait(func(m map[int]bool) bool { return m[control] && m[control+1] }, 10*time.Second) {
		t.Fatal("the control datagrams did not arrive")
	}
	seen := got.snapshot()
	for i, c := range fragMatrix {
		if seen[i] != c.pass {
			t.Errorf("%s: reached the server %v; want %v", c.name, seen[i], c.pass)
		}
	}

	out, errOut, code := cli(t, l, "conntrack", "-s", sock, "--stats", "--json")
	var st struct {
		Fragments struct {
			Dropped map[string]uint64 `json:"dropped"`
			Atomic  uint64            `json:"atomic"`
		} `json:"fragments"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("tungate conntrack --stats --json: exit %d\n%s%s", code, out, errOut)
	}
	d := st.Fragments.Dropped
	if d["overlap"] < 2 || d["too_big"] < 1 || d["duplicate"] < 1 || st.Fragments.Atomic < 1 {
		t.Errorf("reassembly counters %+v: want overlap >= 2, too_big >= 1, duplicate >= 1, atomic >= 1", st.Fragments)
	}
}

// split cuts pkt into fragments of 1,000 bytes of payload.
func split(pkt []byte, id uint32) [][]byte { return packettest.Fragments(pkt, 1000, id) }

func reverse(f [][]byte) [][]byte {
	out := make([][]byte, len(f))
	for i := range f {
		out[len(f)-1-i] = f[i]
	}
	return out
}

// overlapping is a copy of fragment f moved 8 bytes earlier with other
// data: it overlaps the end of the fragment before it.
func overlapping(f []byte) []byte {
	g := bytes.Clone(f)
	off, hl := fragOffset(g)
	setFragOffset(g, off-8, true)
	for i := hl; i < len(g); i++ {
		g[i] ^= 0xff
	}
	return g
}

// beyondMax is fragment f moved to an offset where its end lies past the
// largest datagram.
func beyondMax(f []byte) []byte {
	g := bytes.Clone(f)
	setFragOffset(g, 65528, false)
	return g
}

// fragOffset returns a fragment's offset in bytes and where its payload
// starts.
func fragOffset(f []byte) (int, int) {
	if f[0]>>4 == 4 {
		ip := header.IPv4(f)
		return int(ip.FragmentOffset()), int(ip.HeaderLength())
	}
	return int(uint16(f[42])<<8|uint16(f[43])) &^ 7, header.IPv6MinimumSize + header.IPv6FragmentHeaderSize
}

func setFragOffset(f []byte, off int, more bool) {
	if f[0]>>4 == 4 {
		ip := header.IPv4(f)
		flags := uint8(0)
		if more {
			flags = header.IPv4FlagMoreFragments
		}
		ip.SetFlagsFragmentOffset(flags, uint16(off))
		ip.SetChecksum(0)
		ip.SetChecksum(^ip.CalculateChecksum())
		return
	}
	v := uint16(off)
	if more {
		v |= 1
	}
	f[42], f[43] = byte(v>>8), byte(v)
}

// hopByHopAfterFragment inserts an 8-byte hop-by-hop header after the
// Fragment header of the IPv6 fragment f.
func hopByHopAfterFragment(f []byte) []byte {
	const fh = header.IPv6MinimumSize + header.IPv6FragmentHeaderSize
	next := f[header.IPv6MinimumSize]
	g := append(append(bytes.Clone(f[:fh]), next, 0, 1, 4, 0, 0, 0, 0), f[fh:]...)
	g[header.IPv6MinimumSize] = 0 // the Fragment header's next header: hop-by-hop
	g[4], g[5] = byte((len(g)-header.IPv6MinimumSize)>>8), byte(len(g)-header.IPv6MinimumSize)
	return g
}

// tagged is a row's payload of n bytes: a mark and its number, then filler.
func tagged(row, n int) []byte {
	b := bytes.Repeat([]byte{byte(row)}, n)
	b[0], b[1] = 'F', byte(row)
	return b
}

// taggedServer records which rows arrived whole at the server.
type taggedServer struct {
	mu   sync.Mutex // guards seen
	seen map[int]bool
	cond chan struct{}
}

func serveTagged(t *testing.T, l *lab.Lab) *taggedServer {
	t.Helper()
	s := &taggedServer{seen: map[int]bool{}, cond: make(chan struct{}, 1)}
	for _, a := range []netip.Addr{lab.ServerV4, lab.ServerV6} {
		network := "udp4"
		if a.Is6() {
			network = "udp6"
		}
		pc, err := l.Server.ListenPacket(network, netip.AddrPortFrom(a, fragMatrixPort).String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		go func() { // owned by this test: ends when pc is closed
			buf := make([]byte, 65536)
			for {
				n, _, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				if n > 2 && buf[0] == 'F' && bytes.Equal(buf[:n], tagged(int(buf[1]), n)) {
					s.mu.Lock()
					s.seen[int(buf[1])] = true
					s.mu.Unlock()
					select {
					case s.cond <- struct{}{}:
					default:
					}
				}
			}
		}()
	}
	return s
}

func (s *taggedServer) snapshot() map[int]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[int]bool, len(s.seen))
	for k, v := range s.seen {
		out[k] = v
	}
	return out
}

func (s *taggedServer) wait(ok func(map[int]bool) bool, timeout time.Duration) bool {
	deadline := time.After(timeout)
	for !ok(s.snapshot()) {
		select {
		case <-s.cond:
		case <-deadline:
			return ok(s.snapshot())
		}
	}
	return true
}

// rawSender6 sends whole IPv6 packets, header included, from a namespace
// (IPPROTO_RAW implies IPV6_HDRINCL).
type rawSender6 struct{ fd int }

func newRawSender6(t *testing.T, ns lab.NS) *rawSender6 {
	t.Helper()
	var fd int
	err := ns.Do(func() (err error) {
		fd, err = unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
		return err
	})
	if err != nil {
		t.Fatalf("raw IPv6 socket in %s: %v", ns.Name, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return &rawSender6{fd: fd}
}

func (r *rawSender6) send(pkt []byte, dst netip.Addr) error {
	for {
		err := unix.Sendto(r.fd, pkt, 0, &unix.SockaddrInet6{Addr: dst.As16()})
		if err != unix.EINTR {
			return err
		}
	}
}
