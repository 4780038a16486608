package tun

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// watchdog bounds waits that only end if the code under test works; it
// turns a hang into a failure and is not a speed requirement.
const watchdog = 10 * time.Second

func openTest(t testing.TB, cfg Config) *Interface {
	t.Helper()
	ifc, err := Open(cfg, testLogger(t))
	if err != nil {
		t.Fatalf("Open(%+v): %v", cfg, err)
	}
	t.Cleanup(func() { ifc.Close() })
	return ifc
}

func TestOpenConfiguresDevice(t *testing.T) {
	enterNetns(t)
	cfg := Config{Name: "tgtest0", MTU: 1400, Queues: 1, Addresses: []string{"198.18.0.1/24", "2001:2::1/64"}}
	ifc := openTest(t, cfg)
	if ifc.Name() != "tgtest0" || ifc.MTU() != 1400 || len(ifc.Queues()) != 1 {
		t.Fatalf("Name %q MTU %d queues %d", ifc.Name(), ifc.MTU(), len(ifc.Queues()))
	}

	link, err := netlink.LinkByName("tgtest0")
	if err != nil {
		t.Fatal(err)
	}
	if a := link.Attrs(); a.MTU != 1400 || a.Flags&net.FlagUp == 0 {
		t.Errorf("link MTU %d flags %v, want 1400 and up", a.MTU, a.Flags)
	}
	if tt, ok := link.(*netlink.Tuntap); !ok || tt.Mode != netlink.TUNTAP_MODE_TUN {
		t.Errorf("link is %T %+v, want a TUN", link, link)
	}
	want := map[string]bool{"198.18.0.1/24": false, "2001:2::1/64": false}
	addrs, err := netlink.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		s := a.IPNet.String()
		if _, ok := want[s]; !ok {
			continue
		}
		want[s] = true
		if a.IP.To4() == nil && a.Flags&unix.IFA_F_TENTATIVE != 0 {
			t.Errorf("%s is tentative (flags %#x): DAD was not skipped", s, a.Flags)
		}
	}
	for s, found := range want {
		if !found {
			t.Errorf("address %s missing; have %v", s, addrs)
		}
	}
	for path, v := range map[string]string{
		"/proc/sys/net/ipv4/conf/tgtest0/rp_filter": "2",
		"/proc/sys/net/ipv6/conf/tgtest0/accept_ra": "0",
	} {
		got, err := readSysctl(path)
		if err != nil || got != v {
			t.Errorf("%s = %q, %v; want %q", path, got, err, v)
		}
	}
	if got, _ := readSysctl("/proc/sys/net/ipv4/conf/all/rp_filter"); got == "2" {
		t.Errorf("conf/all/rp_filter was changed to 2; only the device's may be")
	}

	q := ifc.queues[0].(*queue)
	rc, err := q.f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	rc.Control(func(fd uintptr) {
		fdFlags, _ := unix.FcntlInt(fd, unix.F_GETFD, 0)
		flFlags, _ := unix.FcntlInt(fd, unix.F_GETFL, 0)
		if fdFlags&unix.FD_CLOEXEC == 0 {
			t.Error("queue descriptor is inheritable (no FD_CLOEXEC)")
		}
		if flFlags&unix.O_NONBLOCK == 0 {
			t.Error("queue descriptor is blocking")
		}
	})

	if _, err := Open(cfg, testLogger(t)); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("second Open of the same name: %v, want an 'already exists' error", err)
	}

	if err := ifc.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := ifc.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := netlink.LinkByName("tgtest0"); !isLinkNotFound(err) {
		t.Errorf("device still there after Close (LinkByName: %v)", err)
	}
}

func TestOpenRejectsInvalidConfig(t *testing.T) {
	_, err := Open(Config{Name: "bad/name", MTU: 1500, Queues: 1}, nil)
	if err == nil || !strings.Contains(err.Error(), "tun.name") {
		t.Fatalf("Open with a bad name: %v", err)
	}
}

// udpTo returns a datagram-matching function for packets the kernel
// routes into the TUN.
func isUDPTo(pkt []byte, dst netip.AddrPort) bool {
	switch {
	case len(pkt) >= 28 && pkt[0]>>4 == 4 && pkt[9] == unix.IPPROTO_UDP:
		ihl := int(pkt[0]&0xf) * 4
		a, _ := netip.AddrFromSlice(pkt[16:20])
		return len(pkt) >= ihl+8 && a == dst.Addr() && binary.BigEndian.Uint16(pkt[ihl+2:]) == dst.Port()
	case len(pkt) >= 48 && pkt[0]>>4 == 6 && pkt[6] == unix.IPPROTO_UDP:
		a, _ := netip.AddrFromSlice(pkt[24:40])
		return a == dst.Addr() && binary.BigEndian.Uint16(pkt[42:]) == dst.Port()
	}
	return false
}

// countMatches reads dev until it fails (Close) and sends 1 on hits for
// every packet match accepts.
func countMatches(dev Device, mtu int, match func([]byte) bool, hits chan<- int, done chan<- error) {
	bufs := [][]byte{make([]byte, mtu)}
	sizes := []int{0}
	for {
		n, err := dev.Read(bufs, sizes, 0)
		if err != nil {
			done <- err
			return
		}
		for i := 0; i < n; i++ {
			if match(bufs[i][:sizes[i]]) {
				hits <- 1
			}
		}
	}
}

func sendUDP(t *testing.T, dst netip.AddrPort) {
	t.Helper()
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(dst))
	if err != nil {
		t.Fatalf("dial %s: %v", dst, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("tungate")); err != nil {
		t.Fatalf("send to %s: %v", dst, err)
	}
}

// TestQueuesReceiveKernelPackets sends datagrams from many source ports to
// addresses routed into a two-queue TUN and expects every one on some
// queue, and each queue to get some (the kernel spreads flows by hash;
// with 32 flows per family all landing on one queue is a 2^-31 event).
func TestQueuesReceiveKernelPackets(t *testing.T) {
	enterNetns(t)
	ifc := openTest(t, Config{Name: "tgmq0", MTU: 1500, Queues: 2, Addresses: []string{"198.18.0.1/24", "2001:2::1/64"}})
	dsts := []netip.AddrPort{netip.MustParseAddrPort("198.18.0.2:9"), netip.MustParseAddrPort("[2001:2::2]:9")}
	match := func(p []byte) bool { return isUDPTo(p, dsts[0]) || isUDPTo(p, dsts[1]) }

	queues := ifc.Queues()
	if len(queues) != 2 {
		t.Fatalf("%d queues", len(queues))
	}
	hits := [2]chan int{make(chan int, 128), make(chan int, 128)}
	done := make(chan error, 2)
	for i, q := range queues {
		if q.BatchSize() != 1 {
			t.Errorf("queue %d BatchSize %d", i, q.BatchSize())
		}
		go countMatches(q, ifc.MTU(), match, hits[i], done)
	}

	const flows = 32
	for i := 0; i < flows; i++ {
		for _, d := range dsts {
			sendUDP(t, d)
		}
	}
	var per [2]int
	deadline := time.After(watchdog)
	for per[0]+per[1] < 2*flows {
		select {
		case <-hits[0]:
			per[0]++
		case <-hits[1]:
			per[1]++
		case err := <-done:
			t.Fatalf("reader stopped: %v", err)
		case <-deadline:
			t.Fatalf("only %v of %d datagrams arrived", per, 2*flows)
		}
	}
	if per[0] == 0 || per[1] == 0 {
		t.Errorf("datagrams per queue %v: one queue got none", per)
	}
	ifc.Close()
	for range 2 {
		if err := <-done; !errors.Is(err, os.ErrClosed) {
			t.Errorf("reader ended with %v, want os.ErrClosed", err)
		}
	}
}

// TestCloseUnblocksRead parks readers on both queues of an idle device and
// expects Close to end them with os.ErrClosed.
func TestCloseUnblocksRead(t *testing.T) {
	enterNetns(t)
	ifc := openTest(t, Config{Name: "tgblk0", MTU: 1500, Queues: 2})
	done := make(chan error, 2)
	started := make(chan struct{}, 2)
	for _, q := range ifc.Queues() {
		go func() {
			bufs, sizes := [][]byte{make([]byte, 1500)}, []int{0}
			started <- struct{}{}
			for {
				// The kernel may emit IPv6 link-local chatter when the
				// device comes up; keep reading until the error.
				if _, err := q.Read(bufs, sizes, 0); err != nil {
					done <- err
					return
				}
			}
		}()
	}
	<-started
	<-started
	time.Sleep(100 * time.Millisecond) // let both readers park; not asserted
	if err := ifc.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	timeout := time.After(time.Second)
	for range 2 {
		select {
		case err := <-done:
			if !errors.Is(err, os.ErrClosed) {
				t.Errorf("Read after Close: %v, want an error wrapping os.ErrClosed", err)
			}
		case <-timeout:
			t.Fatal("Close did not unblock a pending Read")
		}
	}
	if _, err := netlink.LinkByName("tgblk0"); !isLinkNotFound(err) {
		t.Errorf("device still there after Close (LinkByName: %v)", err)
	}
}

// TestWriteReachesKernel writes an ICMP echo request for the device's own
// address into the TUN and expects the kernel's reply back on the queue.
func TestWriteReachesKernel(t *testing.T) {
	enterNetns(t)
	ifc := openTest(t, Config{Name: "tgwr0", MTU: 1500, Queues: 1, Addresses: []string{"198.18.0.1/24"}})
	q := ifc.Queues()[0]
	req := echoRequest(netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.1"), 0x4242)
	if n, err := q.Write([][]byte{append(make([]byte, 8), req...)}, 8); n != 1 || err != nil {
		t.Fatalf("Write: %d, %v", n, err)
	}
	if n, err := q.Write([][]byte{{0xff, 0, 0}}, 0); n != 0 || err == nil {
		t.Errorf("Write of garbage: %d, %v; want 0 and an error", n, err)
	}
	got := make(chan []byte, 1)
	go func() {
		bufs, sizes := [][]byte{make([]byte, 1500)}, []int{0}
		for {
			if _, err := q.Read(bufs, sizes, 0); err != nil {
				close(got)
				return
			}
			p := bufs[0][:sizes[0]]
			if len(p) >= 28 && p[0] == 0x45 && p[9] == unix.IPPROTO_ICMP && p[20] == 0 && binary.BigEndian.Uint16(p[24:]) == 0x4242 {
				got <- append([]byte(nil), p...)
				return
			}
		}
	}()
	select {
	case p := <-got:
		if p == nil {
			t.Fatal("reader failed before the reply")
		}
	case <-time.After(watchdog):
		t.Fatal("no echo reply from the kernel")
	}
}

// echoRequest builds an IPv4 ICMP echo request with valid checksums.
func echoRequest(src, dst netip.Addr, id uint16) []byte {
	p := make([]byte, 28)
	p[0], p[8], p[9] = 0x45, 64, unix.IPPROTO_ICMP
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	s, d := src.As4(), dst.As4()
	copy(p[12:], s[:])
	copy(p[16:], d[:])
	binary.BigEndian.PutUint16(p[10:], checksum(p[:20]))
	p[20] = 8 // echo request
	binary.BigEndian.PutUint16(p[24:], id)
	binary.BigEndian.PutUint16(p[26:], 1)
	binary.BigEndian.PutUint16(p[22:], checksum(p[20:]))
	return p
}

func checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}
