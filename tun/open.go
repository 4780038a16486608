package tun

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"syscall"

	"github.com/songgao/water"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Interface is an open, configured TUN device with one Device per queue.
// The device is not persistent: it exists while at least one queue is
// open, so a crashed gateway leaves no device (and no routes through it)
// behind.
type Interface struct {
	name   string
	mtu    int
	queues []Device

	closeOnce sync.Once
	closeErr  error // set once by closeOnce
}

// Open creates the TUN device cfg.Name with cfg.Queues queues (a
// multi-queue device when Queues > 1), sets its MTU, loose reverse-path
// filtering and cfg.Addresses, and brings it up.
//
// Open acts on the calling thread's network namespace. tungate runs whole
// inside its gateway namespace, so that is the process's namespace; a
// caller that switches namespaces per thread must call Open on a locked
// thread in the namespace it wants.
//
// cfg must have its defaults applied. An existing interface of the same
// name is an error rather than something to attach to: with multi-queue
// the kernel would let a second gateway share the first one's device.
func Open(cfg Config, log *slog.Logger) (*Interface, error) {
	if err := cfg.Validate().Err(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("tun: netlink: %w", err)
	}
	defer h.Close()

	if _, err := h.LinkByName(cfg.Name); err == nil {
		return nil, fmt.Errorf("tun: interface %q already exists in this network namespace; remove it or choose another tun.name", cfg.Name)
	} else if !isLinkNotFound(err) {
		return nil, fmt.Errorf("tun: look up %q: %w", cfg.Name, err)
	}

	ifc := &Interface{name: cfg.Name, mtu: cfg.MTU}
	for i := 0; i < cfg.Queues; i++ {
		q, err := openAnyQueue(cfg.Name, cfg.Queues > 1, cfg.Offload)
		if err != nil {
			ifc.Close()
			return nil, fmt.Errorf("tun: open queue %d of %q: %w", i, cfg.Name, err)
		}
		ifc.queues = append(ifc.queues, q)
	}
	if err := configure(h, cfg); err != nil {
		ifc.Close()
		return nil, fmt.Errorf("tun: configure %q: %w", cfg.Name, err)
	}
	log.Info("TUN device up", "name", cfg.Name, "mtu", cfg.MTU, "queues", cfg.Queues, "offload", cfg.Offload, "addresses", cfg.Addresses)
	return ifc, nil
}

// Name is the device name.
func (i *Interface) Name() string { return i.name }

// MTU is the device MTU; read buffers must hold this many bytes.
func (i *Interface) MTU() int { return i.mtu }

// Queues returns one Device per queue, to be read by one goroutine each.
func (i *Interface) Queues() []Device {
	return append([]Device(nil), i.queues...)
}

// Close closes every queue, which unblocks their readers and removes the
// device with its addresses and routes. Later calls return the first
// call's result.
func (i *Interface) Close() error {
	i.closeOnce.Do(func() {
		var errs []error
		for _, q := range i.queues {
			// The data plane closes queues to unblock its readers at
			// shutdown, so a queue already closed is the normal case.
			if err := q.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
				errs = append(errs, err)
			}
		}
		i.closeErr = errors.Join(errs...)
	})
	return i.closeErr
}

// openQueue attaches one queue to the device name, creating it on the
// first call, and returns it as a file owned by the runtime poller.
//
// water's descriptor is not used as is. It is opened without O_CLOEXEC,
// so any program started while it is open would inherit the queue and
// keep the device alive after tungate exits; and whether Close unblocks a
// pending Read depends on how water wraps it (an *os.File in blocking
// mode, e.g. after a call to Fd, parks the reader in read(2), where
// close(2) does not reach it). So the descriptor is duplicated with
// close-on-exec, water's copy is closed, and the duplicate is made
// non-blocking before os.NewFile, which then registers it with the
// poller. Both copies share one open file description, so the queue stays
// attached throughout, and each descriptor is closed exactly once: water's
// through its own file, ours through the file returned.
func openQueue(name string, multiQueue bool) (*os.File, error) {
	fd, err := openWaterDup(name, multiQueue)
	if err != nil {
		return nil, err
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("set non-blocking: %w", err)
	}
	return os.NewFile(uintptr(fd), "tun:"+name), nil
}

// openWaterDup returns a close-on-exec duplicate of a fresh water queue.
// ForkLock is held until water's inheritable descriptor is closed, as
// syscall does for descriptors it cannot create with O_CLOEXEC.
func openWaterDup(name string, multiQueue bool) (int, error) {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()

	wi, err := water.New(water.Config{
		DeviceType: water.TUN,
		PlatformSpecificParams: water.PlatformSpecificParams{
			Name:       name,
			MultiQueue: multiQueue,
		},
	})
	if err != nil {
		return -1, err
	}
	wf, ok := wi.ReadWriteCloser.(*os.File)
	if !ok {
		wi.Close()
		return -1, fmt.Errorf("water returned a %T, not an *os.File", wi.ReadWriteCloser)
	}
	if wi.Name() != name {
		wi.Close()
		return -1, fmt.Errorf("kernel named the device %q", wi.Name())
	}
	rc, err := wf.SyscallConn()
	if err != nil {
		wf.Close()
		return -1, err
	}
	dup := -1
	var dupErr error
	// Control, unlike Fd, leaves the descriptor's blocking mode alone.
	if err := rc.Control(func(fd uintptr) {
		dup, dupErr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		dupErr = err
	}
	closeErr := wf.Close()
	if dupErr != nil {
		return -1, fmt.Errorf("duplicate descriptor: %w", dupErr)
	}
	if closeErr != nil {
		unix.Close(dup)
		return -1, fmt.Errorf("close water's descriptor: %w", closeErr)
	}
	return dup, nil
}

func isLinkNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf)
}
