package egress

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
)

// errEchoIDsExhausted means every ICMP identifier of a family is in flight.
var errEchoIDsExhausted = errors.New("egress: no free icmp echo identifier")

// pingFamily is one raw socket and the echoes waiting on it.
type pingFamily struct {
	conn *net.IPConn
	v6   bool

	mu      sync.Mutex // guards waiters, next
	waiters map[uint16]*echoWaiter
	next    uint16 // where the search for a free identifier starts
}

// echoWaiter is one Echo waiting for the reply to the identifier it was
// registered under.
type echoWaiter struct {
	dst   netip.Addr // without zone; the reply must come from it
	seq   uint16
	reply chan []byte // cap 1: the reader never blocks
}

// register allocates an identifier not in flight for this family. Cycling
// through the space, rather than taking the lowest free one, delays the
// reuse of an identifier whose late replies may still arrive.
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

// deliver hands r to the waiter registered under its identifier, if the
// sequence and the source match too; anything else is someone else's reply
// or a late one, and is dropped.
func (f *pingFamily) deliver(src netip.Addr, r echoReply) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := f.waiters[r.id]
	if w == nil || w.seq != r.seq || w.dst != src {
		return
	}
	select {
	case w.reply <- r.payload:
	default: // a duplicate reply; the first one counts
	}
}

// readReplies demultiplexes echo replies to their waiters until the socket
// is closed (done is closed first, so a read error after it is the end, not
// a fault to log).
func (f *pingFamily) readReplies(done <-chan struct{}, log *slog.Logger) {
	// An ICMP message never exceeds an IP datagram.
	buf := make([]byte, 64<<10)
	for {
		// ReadFromIP strips the IPv4 header; IPv6 raw sockets never
		// deliver theirs. Either way buf holds the ICMP message alone.
		n, from, err := f.conn.ReadFromIP(buf)
		if err != nil {
			select {
			case <-done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			log.Debug("icmp read", "err", err)
			continue
		}
		r, ok := parseEchoReply(buf[:n], f.v6)
		if !ok {
			continue
		}
		src, ok := netip.AddrFromSlice(from.IP)
		if !ok {
			continue
		}
		f.deliver(src.Unmap(), r)
	}
}
