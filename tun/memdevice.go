package tun

import (
	"fmt"
	"io"
	"os"
	"sync"
)

// memQueueLen is how many packets MemDevice buffers each way before
// Inject or Write blocks.
const memQueueLen = 4096

var errMemClosed = fmt.Errorf("tun: memory device: %w", os.ErrClosed)

// MemDevice is an in-memory Device for pipeline tests: what a test
// Injects, the pipeline Reads, and what the pipeline Writes, the test
// receives from Sent. Packets are copied both ways, so neither side can
// see the other reuse its buffers.
//
// Both directions buffer 4096 packets and then block (Inject until the
// pipeline reads, Write until the test drains Sent), like a device that
// applies back-pressure; a test that expects replies must drain Sent.
//
// Read returns up to BatchSize queued packets at once, which exercises a
// reader's batch handling. A packet longer than its read buffer is dropped
// and Read reports it with an error wrapping io.ErrShortBuffer.
//
// After Close, Read and Write return errors wrapping os.ErrClosed, Inject
// discards, and Sent is closed once every Write in progress has returned,
// so `for p := range m.Sent()` ends.
type MemDevice struct {
	batch  int
	in     chan []byte   // injected, not yet read
	sent   chan []byte   // written, not yet received by the test
	closed chan struct{} // closed by Close

	readMu  sync.Mutex // serializes Read; guards pending
	pending []byte     // a packet taken from in that the last Read had no room for

	writeMu   sync.RWMutex // held shared by Write while it may send on sent; Close takes it to close sent
	closeOnce sync.Once
}

var _ Device = (*MemDevice)(nil)

// NewMemDevice returns a device whose Read returns at most batch packets
// (at least 1).
func NewMemDevice(batch int) *MemDevice {
	if batch < 1 {
		batch = 1
	}
	return &MemDevice{
		batch:  batch,
		in:     make(chan []byte, memQueueLen),
		sent:   make(chan []byte, memQueueLen),
		closed: make(chan struct{}),
	}
}

// Inject makes a copy of pkt readable. It blocks while the read queue is
// full and discards pkt after Close.
func (m *MemDevice) Inject(pkt []byte) {
	c := append([]byte(nil), pkt...)
	select {
	case <-m.closed:
	default:
		select {
		case m.in <- c:
		case <-m.closed:
		}
	}
}

// Sent receives a copy of every packet written, in order.
func (m *MemDevice) Sent() <-chan []byte { return m.sent }

// Read blocks until a packet is queued, then returns it and as many more
// already queued packets as fit in bufs and the batch size.
func (m *MemDevice) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	m.readMu.Lock()
	defer m.readMu.Unlock()
	select {
	case <-m.closed:
		return 0, errMemClosed
	default:
	}
	max := min(len(bufs), m.batch)
	n := 0
	for n < max {
		p := m.pending
		m.pending = nil
		if p == nil {
			if n == 0 {
				select {
				case p = <-m.in:
				case <-m.closed:
					return 0, errMemClosed
				}
			} else {
				select {
				case p = <-m.in:
				default:
					return n, nil
				}
			}
		}
		b := bufs[n][offset:]
		if len(p) > len(b) {
			if n > 0 {
				// Return what fits; the next Read reports this one.
				m.pending = p
				return n, nil
			}
			return 0, fmt.Errorf("tun: memory device: %d-byte packet dropped, read buffer holds %d: %w", len(p), len(b), io.ErrShortBuffer)
		}
		sizes[n] = copy(b, p)
		n++
	}
	return n, nil
}

// Write sends a copy of each bufs[i][offset:] to Sent.
func (m *MemDevice) Write(bufs [][]byte, offset int) (int, error) {
	m.writeMu.RLock()
	defer m.writeMu.RUnlock()
	for i, b := range bufs {
		select {
		case <-m.closed:
			return i, errMemClosed
		default:
		}
		c := append([]byte(nil), b[offset:]...)
		select {
		case m.sent <- c:
		case <-m.closed:
			return i, errMemClosed
		}
	}
	return len(bufs), nil
}

// BatchSize is the batch given to NewMemDevice.
func (m *MemDevice) BatchSize() int { return m.batch }

// Close unblocks Read, Write and Inject, then closes Sent. It always
// returns nil.
func (m *MemDevice) Close() error {
	m.closeOnce.Do(func() {
		close(m.closed)
		m.writeMu.Lock() // waits for Writes, which now all return
		close(m.sent)
		m.writeMu.Unlock()
	})
	return nil
}
