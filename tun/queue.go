package tun

import (
	"fmt"
	"io"
	"os"
)

// queue is one file descriptor of a TUN device. Each read(2) returns one
// packet, so BatchSize is 1: without a virtio-net header (which water
// cannot enable) the kernel has no way to hand out several at once.
type queue struct {
	f *os.File // registered with the runtime poller: Close unblocks Read
}

var _ Device = (*queue)(nil)

func newQueue(f *os.File) *queue { return &queue{f: f} }

// Read reads one packet into bufs[0][offset:]. The buffer must hold a
// whole packet (MTU bytes): the kernel truncates a longer one and reports
// its full length, which Read turns into an error wrapping
// io.ErrShortBuffer rather than a size past the buffer's end.
func (q *queue) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	if len(bufs) == 0 {
		return 0, nil
	}
	b := bufs[0][offset:]
	if len(b) == 0 {
		return 0, io.ErrShortBuffer
	}
	n, err := q.f.Read(b)
	if err != nil {
		return 0, err
	}
	if n > len(b) {
		return 0, fmt.Errorf("tun: %d-byte packet truncated to a %d-byte buffer: %w", n, len(b), io.ErrShortBuffer)
	}
	sizes[0] = n
	return 1, nil
}

// Write writes each bufs[i][offset:] as one packet.
func (q *queue) Write(bufs [][]byte, offset int) (int, error) {
	for i, b := range bufs {
		if _, err := q.f.Write(b[offset:]); err != nil {
			return i, err
		}
	}
	return len(bufs), nil
}

func (q *queue) BatchSize() int { return 1 }

// Close detaches the queue; the device disappears with its last queue.
func (q *queue) Close() error { return q.f.Close() }
