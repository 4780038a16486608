// Package reassembly puts IPv4 and IPv6 fragments back together before
// conntrack and policy see the datagram, with the rules and limits of
// Linux's reassembly (net/ipv4/ip_fragment.c, net/ipv6/reassembly.c) where
// they decide: which fragments belong together, which are refused (tiny
// first fragments, overlaps, lengths past 65,535 bytes), how much memory
// incomplete datagrams may hold and for how long.
//
// It owns the fragment queues, their memory budget and timeouts, and the
// counters that say why fragments were discarded. It works on raw IP
// packets only and must not know the netstack, conntrack, policy or the
// packet parser that runs on its output: a reassembled datagram is handed
// back as one unfragmented IP packet, to be parsed like any other.
//
// Hostile input never panics (FuzzAdd), and memory held never exceeds the
// configured budget.
package reassembly
