package tun

import (
	"bytes"
	"errors"
	"io"
	"os"
	"sync"
	"testing"
	"time"
)

func makeBufs(n, size int) ([][]byte, []int) {
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = make([]byte, size)
	}
	return bufs, make([]int, n)
}

func TestMemDeviceReadBatches(t *testing.T) {
	m := NewMemDevice(3)
	defer m.Close()
	if m.BatchSize() != 3 {
		t.Fatalf("BatchSize %d", m.BatchSize())
	}
	for i := range 5 {
		m.Inject([]byte{byte(i), 0xaa})
	}
	bufs, sizes := makeBufs(4, 16)
	const off = 4
	var got [][]byte
	for _, want := range []int{3, 2} {
		n, err := m.Read(bufs, sizes, off)
		if err != nil || n != want {
			t.Fatalf("Read: %d, %v; want %d packets", n, err, want)
		}
		for i := 0; i < n; i++ {
			got = append(got, append([]byte(nil), bufs[i][off:off+sizes[i]]...))
		}
	}
	for i, p := range got {
		if !bytes.Equal(p, []byte{byte(i), 0xaa}) {
			t.Errorf("packet %d = %x", i, p)
		}
	}
	// Fewer buffers than the batch size bound the batch too.
	m.Inject([]byte{1})
	m.Inject([]byte{2})
	if n, err := m.Read(bufs[:1], sizes, 0); n != 1 || err != nil {
		t.Errorf("Read into one buffer: %d, %v", n, err)
	}
}

func TestMemDeviceInjectCopies(t *testing.T) {
	m := NewMemDevice(1)
	defer m.Close()
	p := []byte{1, 2, 3}
	m.Inject(p)
	p[0] = 9
	bufs, sizes := makeBufs(1, 8)
	if _, err := m.Read(bufs, sizes, 0); err != nil || !bytes.Equal(bufs[0][:sizes[0]], []byte{1, 2, 3}) {
		t.Fatalf("Read: %x, %v", bufs[0][:sizes[0]], err)
	}
}

func TestMemDeviceShortBuffer(t *testing.T) {
	m := NewMemDevice(4)
	defer m.Close()
	m.Inject([]byte{1})
	m.Inject(make([]byte, 10))
	m.Inject([]byte{3})
	bufs, sizes := makeBufs(4, 4)
	// The first packet fits; the long one waits for the next Read.
	if n, err := m.Read(bufs, sizes, 0); n != 1 || err != nil {
		t.Fatalf("first Read: %d, %v", n, err)
	}
	if n, err := m.Read(bufs, sizes, 0); n != 0 || !errors.Is(err, io.ErrShortBuffer) {
		t.Fatalf("second Read: %d, %v; want io.ErrShortBuffer", n, err)
	}
	if n, err := m.Read(bufs, sizes, 0); n != 1 || err != nil || bufs[0][0] != 3 {
		t.Fatalf("third Read: %d, %v, %x", n, err, bufs[0][:sizes[0]])
	}
}

func TestMemDeviceWriteSent(t *testing.T) {
	m := NewMemDevice(1)
	bufs := [][]byte{{0, 0, 1, 2}, {0, 0, 3}}
	if n, err := m.Write(bufs, 2); n != 2 || err != nil {
		t.Fatalf("Write: %d, %v", n, err)
	}
	bufs[0][2] = 9 // the device must have copied
	m.Close()
	var got [][]byte
	for p := range m.Sent() { // ends: Close closes Sent
		got = append(got, p)
	}
	if len(got) != 2 || !bytes.Equal(got[0], []byte{1, 2}) || !bytes.Equal(got[1], []byte{3}) {
		t.Fatalf("Sent: %x", got)
	}
	if n, err := m.Write(bufs, 0); n != 0 || !errors.Is(err, os.ErrClosed) {
		t.Errorf("Write after Close: %d, %v", n, err)
	}
}

func TestMemDeviceCloseUnblocks(t *testing.T) {
	m := NewMemDevice(2)
	readErr := make(chan error, 1)
	go func() {
		bufs, sizes := makeBufs(2, 8)
		_, err := m.Read(bufs, sizes, 0)
		readErr <- err
	}()
	// A writer blocked on a full Sent must be released too.
	writeErr := make(chan error, 1)
	go func() {
		pkt := [][]byte{{1}}
		for {
			if _, err := m.Write(pkt, 0); err != nil {
				writeErr <- err
				return
			}
		}
	}()
	time.Sleep(50 * time.Millisecond) // let both block; not asserted
	m.Close()
	for name, ch := range map[string]chan error{"Read": readErr, "Write": writeErr} {
		select {
		case err := <-ch:
			if !errors.Is(err, os.ErrClosed) {
				t.Errorf("%s after Close: %v, want os.ErrClosed", name, err)
			}
		case <-time.After(watchdog):
			t.Fatalf("Close did not unblock %s", name)
		}
	}
	m.Inject([]byte{1}) // must not block after Close
	bufs, sizes := makeBufs(1, 8)
	if _, err := m.Read(bufs, sizes, 0); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Read after Close: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestMemDeviceConcurrent runs injectors, readers, writers and a drainer
// at once, for the race detector, and checks nothing is lost.
func TestMemDeviceConcurrent(t *testing.T) {
	m := NewMemDevice(8)
	const injectors, per = 4, 500
	var wg sync.WaitGroup
	for i := range injectors {
		wg.Go(func() {
			for j := range per {
				m.Inject([]byte{byte(i), byte(j)})
			}
		})
	}
	echoed := make(chan int, 2)
	for range 2 {
		go func() { // echo every packet read back out
			bufs, sizes := makeBufs(8, 4)
			total := 0
			for {
				n, err := m.Read(bufs, sizes, 0)
				if err != nil {
					echoed <- total
					return
				}
				out := make([][]byte, n)
				for k := 0; k < n; k++ {
					out[k] = bufs[k][:sizes[k]]
				}
				if w, err := m.Write(out, 0); err != nil {
					echoed <- total + w
					return
				}
				total += n
			}
		}()
	}
	got := 0
	for got < injectors*per {
		<-m.Sent()
		got++
	}
	wg.Wait()
	m.Close()
	if n := <-echoed + <-echoed; n != injectors*per {
		t.Errorf("echoed %d packets, want %d", n, injectors*per)
	}
}
