// Package tun owns the TUN device: opening it (water, one file per queue),
// configuring it through netlink (up, MTU, addresses, loose reverse-path
// filtering), steering forwarded traffic into it with policy routing, and a
// batch Device contract with an in-memory double for tests.
package tun

// Device is one packet queue of a TUN device, or a test double. Packets are
// raw IP datagrams (no packet-information header).
type Device interface {
	// Read blocks until at least one packet is available, then copies up to
	// len(bufs) packets, packet i into bufs[i][offset:], and stores its
	// length in sizes[i]. It returns the number of packets read. After Close
	// it returns an error wrapping os.ErrClosed.
	Read(bufs [][]byte, sizes []int, offset int) (n int, err error)
	// Write writes each bufs[i][offset:] as one packet and returns how many
	// were written before the first error.
	Write(bufs [][]byte, offset int) (n int, err error)
	// BatchSize is the largest number of packets one Read may return.
	BatchSize() int
	// Close releases the queue and unblocks a pending Read.
	Close() error
}
