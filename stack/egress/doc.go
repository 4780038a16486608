// Package egress is tungate's upstream side: the sockets that carry allowed
// traffic on to the real destinations. It owns the [egress] section of the
// configuration (Config), the Dialer that opens TCP and UDP sockets which
// leave through the egress interface instead of looping back into the TUN,
// and the Pinger that forwards ICMP echo for real through raw sockets,
// translating clients' identifiers to its own.
//
// It must not know about policy, conntrack or gVisor: whoever calls it has
// already decided that the destination may be reached, and hands over plain
// addresses and payloads. Keeping it that way lets the data plane swap its
// upstream (tests pass fakes) and lets this package be tested with nothing
// but sockets in a network namespace.
package egress
