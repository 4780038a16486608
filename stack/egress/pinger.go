package egress

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"
)

// Pinger forwards ICMP echo requests for real: it sends them from raw sockets
// on the egress interface and hands back the destination's reply. Clients'
// identifiers are translated to identifiers the Pinger owns, so any number of
// clients may ping the same destination with the same identifier.
type Pinger struct {
	cfg  Config
	log  *slog.Logger
	done chan struct{}  // closed by Close: wakes pending Echoes; tells readers a read error is the end
	wg   sync.WaitGroup // counts the readers; Close waits for them

	mu     sync.Mutex // guards v4, v6, closed
	v4, v6 *pingFamily
	closed bool
}

var _ io.Closer = (*Pinger)(nil)

// NewPinger returns a Pinger. Sockets are opened on first use per address
// family, in the network namespace of the thread that first needs them, so
// a host without IPv6 only fails IPv6 echoes. log may be nil.
func NewPinger(cfg Config, log *slog.Logger) (*Pinger, error) {
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
	// Replies come from the address without zone, so the waiter keeps that.
	ourID, w, err := f.register(dst.WithZone(""), seq)
	if err != nil {
		return nil, err
	}
	defer f.unregister(ourID)

	pkt, err := marshalEchoRequest(f.v6, ourID, seq, payload)
	if err != nil {
		return nil, fmt.Errorf("icmp echo to %s: %w", dst, err)
	}
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

// Close closes the sockets, which ends their readers, and waits for the
// readers to return. Pending and later Echoes fail with net.ErrClosed. It
// is idempotent.
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

// family returns the socket for one address family, opening it on first
// use and starting its reader.
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
	// Ends when Close closes f's socket.
	go func() { defer p.wg.Done(); f.readReplies(p.done, p.log) }()
	return f, nil
}
