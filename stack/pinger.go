package stack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// errEchoIDsExhausted means every ICMP identifier of a family is in flight.
var errEchoIDsExhausted = errors.New("stack: no free icmp echo identifier")

// Pinger forwards ICMP echo requests for real: it sends them from raw sockets
// on the egress interface and hands back the destination's reply. Clients'
// identifiers are translated to identifiers the Pinger owns, so any number of
// clients may ping the same destination with the same identifier.
type Pinger struct {
	cfg  EgressConfig
	log  *slog.Logger
	done chan struct{} // closed by Close; wakes every Echo
	wg   sync.WaitGroup

	mu     sync.Mutex // guards v4, v6, closed
	v4, v6 *pingFamily
	closed bool
}

// pingFamily is one raw socket and the echoes waiting on it.
type pingFamily struct {
	conn *net.IPConn
	v6   bool

	mu      sync.Mutex // guards waiters, next
	waiters map[uint16]*echoWaiter
	next    uint16
}

type echoWaiter struct {
	dst   netip.Addr // without zone; replies come from it
	seq   uint16
	reply chan []byte // cap 1: the reader never blocks
}

// NewPinger returns a Pinger. Sockets are opened on first use per address
// family, so a host without IPv6 only fails IPv6 echoes.
func NewPinger(cfg EgressConfig, log *slog.Logger) (*Pinger, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Pinger{cfg: cfg, log: log, done: make(chan struct{})}, nil
}

// Echo sends an echo request to dst with seq and payload and returns the
// payload of the matching reply. id is the client's identifier; it is only
// used for logs, the wire carries one of ours. Errors: os.ErrDeadlineExceeded
// (wrapped) when no reply came within timeout (timeout <= 0: wait for ctx),
// ctx.Err(), net.ErrClosed after Close.
func (p *Pinger) Echo(ctx context.Context, dst netip.Addr, id, seq uint16, payload []byte, timeout time.Duration) ([]byte, error) {
	dst = dst.Unmap()
	if !dst.IsValid() {
		return nil, fmt.Errorf("icmp echo: invalid destination")
	}
	f, err := p.family(ctx, dst.Is6())
	if err != nil {
		return nil, err
	}
	ourID, w, err := f.register(dst.WithZone(""), seq)
	if err != nil {
		return nil, err
	}
	defer f.unregister(ourID)

	pkt := appendEcho(make([]byte, 0, icmpEchoHeaderLen+len(payload)), f.v6, ourID, seq, payload)
	if _, err := f.conn.WriteToIP(pkt, &net.IPAddr{IP: dst.AsSlice(), Zone: dst.Zone()}); err != nil {
		return nil, fmt.Errorf("icmp echo to %s: %w", dst, err)
	}

	var expired <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	select {
	case r := <-w.reply:
		return r, nil
	case <-expired:
		return nil, fmt.Errorf("icmp echo to %s (client id %d seq %d): %w", dst, id, seq, os.ErrDeadlineExceeded)
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-p.done:
		return nil, net.ErrClosed
	}
}

// Close closes the sockets and waits for the readers. It is idempotent.
func (p *Pinger) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.done)
	var err error
	for _, f := range [2]*pingFamily{p.v4, p.v6} {
		if f != nil {
			err = errors.Join(err, f.conn.Close())
		}
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

// family returns the socket for one address family, opening it (in the
// caller's network namespace) on first use.
func (p *Pinger) family(ctx context.Context, v6 bool) (*pingFamily, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, net.ErrClosed
	}
	slot := &p.v4
	if v6 {
		slot = &p.v6
	}
	if *slot != nil {
		return *slot, nil
	}
	f, err := openPingFamily(ctx, p.cfg, v6)
	if err != nil {
		return nil, err
	}
	*slot = f
	p.wg.Add(1)
	// Owned by the Pinger; ends when Close closes the socket.
	go func() { defer p.wg.Done(); p.read(f) }()
	return f, nil
}

func openPingFamily(ctx context.Context, cfg EgressConfig, v6 bool) (*pingFamily, error) {
	network, laddr := "ip4:icmp", "0.0.0.0"
	if v6 {
		network, laddr = "ip6:ipv6-icmp", "::"
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var opErr error
		err := c.Control(func(fd uintptr) {
			if opErr = setEgressOpts(int(fd), cfg.Interface, cfg.Mark); opErr == nil {
				opErr = setEchoReplyFilter(int(fd), v6)
			}
		})
		if err != nil {
			return err
		}
		return opErr
	}}
	pc, err := lc.ListenPacket(ctx, network, laddr)
	if err != nil {
		return nil, fmt.Errorf("icmp socket: %w", err)
	}
	return &pingFamily{
		conn:    pc.(*net.IPConn),
		v6:      v6,
		waiters: make(map[uint16]*echoWaiter),
		next:    uint16(rand.Uint32()),
	}, nil
}

// setEchoReplyFilter makes the kernel drop every ICMP type but echo reply
// before it is queued: a raw socket otherwise receives all ICMP of the host.
func setEchoReplyFilter(fd int, v6 bool) error {
	if v6 {
		var f unix.ICMPv6Filter
		for i := range f.Data {
			f.Data[i] = ^uint32(0) // a set bit blocks the type
		}
		f.Data[icmpv6EchoReply>>5] &^= 1 << (icmpv6EchoReply & 31)
		if err := unix.SetsockoptICMPv6Filter(fd, unix.SOL_ICMPV6, unix.ICMPV6_FILTER, &f); err != nil {
			return fmt.Errorf("ICMPV6_FILTER: %w", err)
		}
		return nil
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_RAW, unix.ICMP_FILTER, int(^uint32(1<<icmpv4EchoReply))); err != nil {
		return fmt.Errorf("ICMP_FILTER: %w", err)
	}
	return nil
}

// read demultiplexes echo replies to their waiters until the socket closes.
// Everything that is not a reply to one of our pending echoes is ignored.
func (p *Pinger) read(f *pingFamily) {
	buf := make([]byte, 64<<10)
	for {
		n, from, err := f.conn.ReadFromIP(buf)
		if err != nil {
			select {
			case <-p.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			p.log.Debug("icmp read", "err", err)
			continue
		}
		m, ok := parseEcho(buf[:n], f.v6)
		if !ok || m.typ != replyType(f.v6) {
			continue
		}
		src, ok := netip.AddrFromSlice(from.IP)
		if !ok {
			continue
		}
		f.deliver(src.Unmap(), m)
	}
}

func replyType(v6 bool) uint8 {
	if v6 {
		return icmpv6EchoReply
	}
	return icmpv4EchoReply
}

// register allocates an identifier not in flight for this family.
func (f *pingFamily) register(dst netip.Addr, seq uint16) (uint16, *echoWaiter, error) {
	w := &echoWaiter{dst: dst, seq: seq, reply: make(chan []byte, 1)}
	f.mu.Lock()
	defer f.mu.Unlock()
	for range 1 << 16 {
		id := f.next
		f.next++
		if _, busy := f.waiters[id]; !busy {
			f.waiters[id] = w
			return id, w, nil
		}
	}
	return 0, nil, errEchoIDsExhausted
}

func (f *pingFamily) unregister(id uint16) {
	f.mu.Lock()
	delete(f.waiters, id)
	f.mu.Unlock()
}

func (f *pingFamily) deliver(src netip.Addr, m echoMsg) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := f.waiters[m.id]
	if w == nil || w.seq != m.seq || w.dst != src {
		return
	}
	select {
	case w.reply <- append([]byte(nil), m.payload...):
	default: // a duplicate reply; the first one counts
	}
}
