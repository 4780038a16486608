package tun

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// configure sets up the freshly created device through h: MTU, sysctls,
// addresses, then up. The sysctls come before up so that the kernel never
// sends router solicitations from the device.
func configure(h *netlink.Handle, cfg Config) error {
	link, err := h.LinkByName(cfg.Name)
	if err != nil {
		return err
	}
	if err := h.LinkSetMTU(link, cfg.MTU); err != nil {
		return fmt.Errorf("set MTU %d: %w", cfg.MTU, err)
	}
	// Return traffic written into the TUN arrives "from" the TUN while the
	// main table routes its source elsewhere; strict reverse-path filtering
	// would drop it. The effective mode is the larger of "all" and the
	// device's, so 2 (loose) here wins without touching "all".
	if err := writeSysctl("/proc/sys/net/ipv4/conf/"+cfg.Name+"/rp_filter", "2"); err != nil {
		return err
	}
	// A gateway's TUN takes no router advertisements; this also stops the
	// router solicitations that would show up in tcpdump. Missing when
	// IPv6 is disabled, which is fine.
	if err := writeSysctl("/proc/sys/net/ipv6/conf/"+cfg.Name+"/accept_ra", "0"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for _, s := range cfg.Addresses {
		p, err := parseAddress(s)
		if err != nil {
			return fmt.Errorf("address %q: %w", s, err)
		}
		a := &netlink.Addr{IPNet: &net.IPNet{
			IP:   p.Addr().AsSlice(),
			Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen()),
		}}
		if p.Addr().Is6() {
			// No duplicate address detection: nothing else is on a TUN, and
			// a tentative address could not be used for seconds.
			a.Flags = unix.IFA_F_NODAD
		}
		if err := h.AddrAdd(link, a); err != nil {
			return fmt.Errorf("add address %s: %w", s, err)
		}
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("set up: %w", err)
	}
	return nil
}

// writeSysctl writes value to a /proc/sys file. /proc/sys/net resolves to
// the network namespace of the calling thread.
func writeSysctl(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, werr := f.WriteString(value + "\n")
	cerr := f.Close()
	if werr != nil {
		return werr
	}
	return cerr
}

// readSysctl returns a /proc/sys file's content without the trailing
// newline.
func readSysctl(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return string(b), nil
}
