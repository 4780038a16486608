package egress

import (
	"encoding/binary"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// marshalEchoRequest returns an ICMP (v6: ICMPv6) echo request without IP
// header, as raw sockets send it. x/net computes the ICMPv4 checksum. The
// ICMPv6 one needs the IPv6 pseudo-header, which only the kernel knows for
// certain (it picks the source address), so it is left zero: Linux always
// fills it in on ICMPv6 raw sockets (RFC 3542 section 3.1; the socket's
// IPV6_CHECKSUM offset is fixed at 2 and cannot be turned off).
func marshalEchoRequest(v6 bool, id, seq uint16, payload []byte) ([]byte, error) {
	var typ icmp.Type = ipv4.ICMPTypeEcho
	if v6 {
		typ = ipv6.ICMPTypeEchoRequest
	}
	m := icmp.Message{Type: typ, Body: &icmp.Echo{ID: int(id), Seq: int(seq), Data: payload}}
	return m.Marshal(nil)
}

// echoReply is what matches a reply to the request it answers, and what the
// client gets back.
type echoReply struct {
	id, seq uint16
	payload []byte // a copy: valid after the read buffer is reused
}

// echoReplyType is the echo reply type of a family; its Protocol is the IP
// protocol number icmp.ParseMessage wants.
func echoReplyType(v6 bool) icmp.Type {
	if v6 {
		return ipv6.ICMPTypeEchoReply
	}
	return ipv4.ICMPTypeEchoReply
}

// parseEchoReply reads b, an ICMP (v6: ICMPv6) message without IP header,
// and reports whether it is a well-formed echo reply of that family: code 0
// and a body with identifier and sequence. Everything else is refused, as
// the socket's ICMP filter already refuses it; in particular our own echo
// requests, which a raw socket sees when the destination is local.
//
// The ICMPv4 checksum is checked here: an IPv4 raw socket gets a copy of
// every message before the kernel's ICMP code checks it, corrupt ones
// included. An IPv6 raw socket drops a bad checksum itself.
func parseEchoReply(b []byte, v6 bool) (echoReply, bool) {
	want := echoReplyType(v6)
	m, err := icmp.ParseMessage(want.Protocol(), b)
	if err != nil || m.Type != want || m.Code != 0 {
		return echoReply{}, false
	}
	e, ok := m.Body.(*icmp.Echo)
	if !ok || (!v6 && !checksumMatches(m)) {
		return echoReply{}, false
	}
	return echoReply{id: uint16(e.ID), seq: uint16(e.Seq), payload: e.Data}, true
}

// checksumMatches reports whether the parsed ICMPv4 message m carries the
// checksum x/net computes for the same type, code and body. Re-encoding
// gives back the received bytes exactly, so this is the receive-side check
// without a second checksum implementation.
func checksumMatches(m *icmp.Message) bool {
	re, err := (&icmp.Message{Type: m.Type, Code: m.Code, Body: m.Body}).Marshal(nil)
	return err == nil && len(re) >= 4 && int(binary.BigEndian.Uint16(re[2:4])) == m.Checksum
}
