package tun

import (
	"fmt"
	"io"
	"os"
	"sync"
)

// vnetBatch is how many segments one Read hands out at most. A 64 KiB
// superpacket of 1448-byte segments is 46; a longer run continues on the
// next Read.
const vnetBatch = 64

// vnetQueue is one queue of a TUN opened with IFF_VNET_HDR and offloads
// on: every packet read or written carries a virtio-net header, reads may
// be TCP superpackets, writes may be too (OffloadWriter).
type vnetQueue struct {
	f *os.File // registered with the runtime poller: Close unblocks Read

	mu   sync.Mutex // guards rbuf, seg, the read side's state
	rbuf []byte     // one read(2): header and packet
	seg  segmenter  // the superpacket being handed out, if any

	wpool sync.Pool // *[]byte write buffers for Write calls without headroom
}

var (
	_ Device        = (*vnetQueue)(nil)
	_ OffloadWriter = (*vnetQueue)(nil)
)

func newVnetQueue(f *os.File) *vnetQueue {
	return &vnetQueue{f: f, rbuf: make([]byte, VirtioNetHdrLen+GSOMaxSize)}
}

// Read returns whole packets: a superpacket is segmented into bufs (and
// into later Reads when it has more segments than len(bufs)), a partial
// checksum is completed. Packets whose header makes no sense are dropped
// and Read goes on to the next one.
func (q *vnetQueue) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	if len(bufs) == 0 {
		return 0, nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		if !q.seg.done() {
			return q.segments(bufs, sizes, offset)
		}
		n, err := q.f.Read(q.rbuf)
		if err != nil {
			return 0, err
		}
		var h VirtioNetHdr
		if h.Decode(q.rbuf[:n]) != nil {
			continue
		}
		pkt := q.rbuf[VirtioNetHdrLen:n]
		if h.GSOType != VirtioNetHdrGSONone {
			if q.seg.reset(pkt, &h) != nil {
				q.seg = segmenter{}
			}
			continue
		}
		if h.Flags&VirtioNetHdrFNeedsCsum != 0 && completeChecksum(pkt, &h) != nil {
			continue
		}
		b := bufs[0][offset:]
		if len(pkt) > len(b) {
			return 0, fmt.Errorf("tun: %d-byte packet for a %d-byte buffer: %w", len(pkt), len(b), io.ErrShortBuffer)
		}
		sizes[0] = copy(b, pkt)
		return 1, nil
	}
}

// segments hands out the pending superpacket's next segments. q.mu is held.
func (q *vnetQueue) segments(bufs [][]byte, sizes []int, offset int) (int, error) {
	k := 0
	for k < len(bufs) && !q.seg.done() {
		n, err := q.seg.next(bufs[k][offset:])
		if err != nil {
			if k == 0 {
				return 0, fmt.Errorf("tun: segment too large for the read buffer: %w", err)
			}
			break
		}
		sizes[k] = n
		k++
	}
	return k, nil
}

// Write writes each bufs[i][offset:] as a plain packet (no offload). With
// offset >= VirtioNetHdrLen the header is built in the caller's headroom,
// which Write overwrites; otherwise the packet is copied.
func (q *vnetQueue) Write(bufs [][]byte, offset int) (int, error) {
	for i, b := range bufs {
		if err := q.writePlain(b, offset); err != nil {
			return i, err
		}
	}
	return len(bufs), nil
}

func (q *vnetQueue) writePlain(b []byte, offset int) error {
	if offset >= VirtioNetHdrLen {
		w := b[offset-VirtioNetHdrLen:]
		clear(w[:VirtioNetHdrLen])
		_, err := q.f.Write(w)
		return err
	}
	pkt := b[offset:]
	if len(pkt) > GSOMaxSize {
		return fmt.Errorf("tun: %d-byte packet: %w", len(pkt), io.ErrShortBuffer)
	}
	wp, _ := q.wpool.Get().(*[]byte)
	if wp == nil {
		w := make([]byte, VirtioNetHdrLen+GSOMaxSize)
		wp = &w
	}
	w := (*wp)[:VirtioNetHdrLen+len(pkt)]
	clear(w[:VirtioNetHdrLen])
	copy(w[VirtioNetHdrLen:], pkt)
	_, err := q.f.Write(w)
	q.wpool.Put(wp)
	return err
}

// WriteOffload implements OffloadWriter.
func (q *vnetQueue) WriteOffload(b []byte) error {
	if len(b) < VirtioNetHdrLen || len(b)-VirtioNetHdrLen > GSOMaxSize {
		return fmt.Errorf("tun: %d-byte offload write: %w", len(b), io.ErrShortBuffer)
	}
	_, err := q.f.Write(b)
	return err
}

// GSOMaxSize implements OffloadWriter.
func (q *vnetQueue) GSOMaxSize() int { return GSOMaxSize }

// BatchSize is the most segments one Read returns.
func (q *vnetQueue) BatchSize() int { return vnetBatch }

// Close detaches the queue; the device disappears with its last queue.
func (q *vnetQueue) Close() error { return q.f.Close() }
