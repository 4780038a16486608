package tun

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// seqpacketQueues returns two queues over a SOCK_SEQPACKET pair: like a
// TUN, every read returns one whole message, and both descriptors are
// non-blocking so the runtime poller owns them, as Open arranges.
func seqpacketQueues(t testing.TB) (a, b *queue) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	a, b = newQueue(os.NewFile(uintptr(fds[0]), "a")), newQueue(os.NewFile(uintptr(fds[1]), "b"))
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func TestQueueReadWrite(t *testing.T) {
	a, b := seqpacketQueues(t)
	pkts := [][]byte{append(make([]byte, 4), 1, 2, 3), append(make([]byte, 4), 4, 5)}
	if n, err := a.Write(pkts, 4); n != 2 || err != nil {
		t.Fatalf("Write: %d, %v", n, err)
	}
	bufs, sizes := [][]byte{make([]byte, 64), make([]byte, 64)}, []int{0, 0}
	for _, want := range [][]byte{{1, 2, 3}, {4, 5}} {
		n, err := b.Read(bufs, sizes, 2)
		if n != 1 || err != nil || !bytes.Equal(bufs[0][2:2+sizes[0]], want) {
			t.Fatalf("Read: %d, %v, %x; want one packet %x", n, err, bufs[0][2:2+sizes[0]], want)
		}
	}
	if n, err := b.Read(bufs, sizes, 64); n != 0 || !errors.Is(err, io.ErrShortBuffer) {
		t.Errorf("Read into no room: %d, %v", n, err)
	}
	b.Close()
	if n, err := b.Read(bufs, sizes, 0); n != 0 || !errors.Is(err, os.ErrClosed) {
		t.Errorf("Read after Close: %d, %v", n, err)
	}
	if n, err := b.Write(pkts, 0); n != 0 || !errors.Is(err, os.ErrClosed) {
		t.Errorf("Write after Close: %d, %v", n, err)
	}
}

// TestQueueAllocs guards the per-packet path: a Write and a Read of one
// packet allocate nothing.
func TestQueueAllocs(t *testing.T) {
	a, b := seqpacketQueues(t)
	out := [][]byte{make([]byte, 1400)}
	bufs, sizes := [][]byte{make([]byte, 1500)}, []int{0}
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := a.Write(out, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Read(bufs, sizes, 0); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per packet, want 0", allocs)
	}
}

func BenchmarkQueueWriteRead(b *testing.B) {
	qa, qb := seqpacketQueues(b)
	out := [][]byte{make([]byte, 1400)}
	bufs, sizes := [][]byte{make([]byte, 1500)}, []int{0}
	b.ReportAllocs()
	b.SetBytes(1400)
	for b.Loop() {
		if _, err := qa.Write(out, 0); err != nil {
			b.Fatal(err)
		}
		if _, err := qb.Read(bufs, sizes, 0); err != nil {
			b.Fatal(err)
		}
	}
}
