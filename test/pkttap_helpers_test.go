package test

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tungate/tungate/internal/lab"
)

// packetTap keeps what parse makes of every IPv4 packet an interface inside
// a namespace sends or receives, when keep accepts it. AF_PACKET with
// ETH_P_ALL: only taps for every protocol see outgoing packets, and nothing
// the stack does can hide them. sniffer and segCapture are its two views.
type packetTap[T any] struct {
	fd   int
	stop atomic.Bool
	done chan struct{}

	mu      sync.Mutex    // guards kept, changed
	kept    []T           // in arrival order
	changed chan struct{} // closed and replaced when kept grows
}

// sniffMax bounds what a tap keeps; the tests need far fewer.
const sniffMax = 100000

// startPacketTap opens the tap; snap is how many bytes of each packet parse
// sees at most (it gets the truncated prefix of longer ones). what names the
// tap in a failure.
func startPacketTap[T any](t *testing.T, what string, ns lab.NS, ifName string, snap int,
	parse func([]byte) (T, bool), keep func(T) bool) *packetTap[T] {
	t.Helper()
	c := &packetTap[T]{done: make(chan struct{}), changed: make(chan struct{})}
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(ifName)
		if err != nil {
			return err
		}
		// SOCK_DGRAM strips the link header, so Ethernet and TUN look alike.
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return err
		}
		// The reader wakes this often to notice stop.
		tv := unix.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			unix.Close(fd)
			return err
		}
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
		c.fd = fd
		return nil
	})
	if err != nil {
		t.Fatalf("%s on %s in %s: %v", what, ifName, ns.Name, err)
	}
	// Owned by c; ends once stop is set (within one receive timeout).
	go c.read(snap, parse, keep)
	t.Cleanup(c.close)
	return c
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (c *packetTap[T]) read(snap int, parse func([]byte) (T, bool), keep func(T) bool) {
	defer close(c.done)
	buf := make([]byte, snap)
	for !c.stop.Load() {
		// MSG_TRUNC: n is the packet's real length, which may exceed buf.
		n, from, err := unix.Recvfrom(c.fd, buf, unix.MSG_TRUNC)
		if err != nil {
			continue // timeout or EINTR: check stop
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); !ok || ll.Protocol != htons(unix.ETH_P_IP) {
			continue
		}
		p, ok := parse(buf[:min(n, len(buf))])
		if !ok || !keep(p) {
			continue
		}
		c.mu.Lock()
		if len(c.kept) < sniffMax {
			c.kept = append(c.kept, p)
			close(c.changed)
			c.changed = make(chan struct{})
		}
		c.mu.Unlock()
	}
}

func (c *packetTap[T]) close() {
	c.stop.Store(true)
	<-c.done
	unix.Close(c.fd)
}
