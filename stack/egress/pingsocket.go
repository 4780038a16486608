package egress

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// openPingFamily opens the raw ICMP (v6: ICMPv6) socket of one family, in
// the caller's network namespace. Raw rather than ping (SOCK_DGRAM)
// sockets: on a ping socket the kernel overwrites the identifier with the
// socket's own, so one shared socket could not carry the identifiers the
// Pinger chooses to keep concurrent echoes apart.
func openPingFamily(ctx context.Context, cfg Config, v6 bool) (*pingFamily, error) {
	network, laddr := "ip4:icmp", "0.0.0.0"
	if v6 {
		network, laddr = "ip6:ipv6-icmp", "::"
	}
	lc := net.ListenConfig{Control: applyOnFD(func(fd int) error {
		if err := setEgressOpts(fd, cfg.Interface, cfg.Mark); err != nil {
			return err
		}
		return setEchoReplyFilter(fd, v6)
	})}
	pc, err := lc.ListenPacket(ctx, network, laddr)
	if err != nil {
		return nil, fmt.Errorf("icmp socket: %w", err)
	}
	return &pingFamily{
		conn:    pc.(*net.IPConn),
		v6:      v6,
		waiters: make(map[uint16]*echoWaiter),
		// Every raw socket of the host sees every reply, so a random start
		// makes it unlikely that another Pinger (or this gateway before a
		// restart) has the same identifiers in flight.
		next: uint16(rand.Uint32()),
	}, nil
}

// setEchoReplyFilter makes the kernel drop every ICMP type but echo reply
// before it is queued: a raw socket otherwise receives a copy of all ICMP
// of the host, our own echo requests to local destinations included.
func setEchoReplyFilter(fd int, v6 bool) error {
	if v6 {
		var f unix.ICMPv6Filter
		for i := range f.Data {
			f.Data[i] = ^uint32(0) // a set bit blocks the type
		}
		reply := uint32(ipv6.ICMPTypeEchoReply)
		f.Data[reply>>5] &^= 1 << (reply & 31)
		if err := unix.SetsockoptICMPv6Filter(fd, unix.SOL_ICMPV6, unix.ICMPV6_FILTER, &f); err != nil {
			return fmt.Errorf("ICMPV6_FILTER: %w", err)
		}
		return nil
	}
	// One bit per type below 32; a set bit blocks the type.
	blockAllButReply := int(^uint32(1 << ipv4.ICMPTypeEchoReply))
	if err := unix.SetsockoptInt(fd, unix.SOL_RAW, unix.ICMP_FILTER, blockAllButReply); err != nil {
		return fmt.Errorf("ICMP_FILTER: %w", err)
	}
	return nil
}
