// Package packet is the data plane's wire format. It owns parsing and
// sanity-checking every raw IP packet the gateway reads from the TUN (and
// every packet gVisor emits) into the conntrack view plus the offsets the
// stack needs, the reasons such a packet is dropped before conntrack, the
// packets the gateway synthesizes itself (TCP resets, ICMP and ICMPv6
// errors, echo replies), and the conversions between conntrack keys,
// net/netip and gVisor addresses.
//
// It works on byte slices and conntrack values only: it must not know
// policy, the netstack, the TUN or what the stack decides about a packet.
// Nothing here allocates per packet, and the parser never panics on any
// input (FuzzParse).
package packet
