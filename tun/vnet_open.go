package tun

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// vnetOffloads are the offloads an offload queue asks for: the kernel may
// hand over partial checksums and TCP superpackets of either family, and
// take them back. UDP segmentation stays off, so UDP arrives as datagrams.
const vnetOffloads = unix.TUN_F_CSUM | unix.TUN_F_TSO4 | unix.TUN_F_TSO6

// openVnetQueue attaches one queue to the device name with a virtio-net
// header and offloads, creating the device on the first call. water has
// no way to ask for IFF_VNET_HDR, so this opens /dev/net/tun itself: close
// on exec and non-blocking from the start, so os.NewFile registers it with
// the poller and Close unblocks a pending Read.
func openVnetQueue(name string, multiQueue bool) (*vnetQueue, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			unix.Close(fd)
		}
	}()
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return nil, err
	}
	flags := uint16(unix.IFF_TUN | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if multiQueue {
		flags |= unix.IFF_MULTI_QUEUE
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		return nil, fmt.Errorf("TUNSETIFF: %w", err)
	}
	if got := ifr.Name(); got != name {
		return nil, fmt.Errorf("kernel named the device %q", got)
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TUNSETVNETHDRSZ, VirtioNetHdrLen); err != nil {
		return nil, fmt.Errorf("TUNSETVNETHDRSZ: %w", err)
	}
	if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, vnetOffloads); err != nil {
		return nil, fmt.Errorf("TUNSETOFFLOAD (kernel without TUN offloads? set tun.offload = false): %w", err)
	}
	ok = true
	return newVnetQueue(os.NewFile(uintptr(fd), "tun:"+name)), nil
}

// openAnyQueue opens one queue the way cfg asks: plain through water, or
// with offloads.
func openAnyQueue(name string, multiQueue, offload bool) (Device, error) {
	if offload {
		return openVnetQueue(name, multiQueue)
	}
	f, err := openQueue(name, multiQueue)
	if err != nil {
		return nil, err
	}
	return newQueue(f), nil
}
