package stack

import (
	"encoding/binary"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tungate/tungate/conntrack"
)

// forwardEcho hands an allowed echo request to the Echoer instead of
// gVisor (which would answer it itself, lying that the destination is up).
// The client gets a reply only when the real destination answered.
func (s *Stack) forwardEcho(b []byte, p *parsed) {
	select {
	case s.echoSem <- struct{}{}:
	default:
		s.ctr.echoDropped.Add(1)
		return
	}
	if !s.startFlow() {
		<-s.echoSem
		return
	}
	key := p.ct.Key
	family := p.family
	seq := echoSeq(b, p)
	payload := append([]byte(nil), b[p.payload:p.end]...)
	dst := addrOf(&key.Dst, family)
	s.ctr.echoForwarded.Add(1)
	// Owned by the Stack: ends when the reply came, the timeout passed or
	// flowCtx was cancelled by Run's teardown.
	go func() {
		defer s.flows.Done()
		defer func() { <-s.echoSem }()
		reply, err := s.echo.Echo(s.flowCtx, dst, key.SrcPort, seq, payload, echoTimeout)
		if err != nil {
			return
		}
		out := make([]byte, header.IPv6MinimumSize+header.ICMPv6EchoMinimumSize+len(reply))
		n := buildEchoReply(out, family, &key, seq, reply)
		out = out[:n]
		var rp parsed
		if parseOutbound(out, &rp) != reasonNone {
			return
		}
		s.ct.Track(&rp.ct)
		s.ctr.echoReplies.Add(1)
		s.writeOne(out, &key)
	}()
}

// buildEchoReply writes into out the echo reply the client would have
// received from the destination of the echo flow k: source the original
// destination, same identifier, sequence and payload. out must hold the
// IP header, 8 bytes and the payload.
func buildEchoReply(out []byte, family uint8, k *conntrack.Key, seq uint16, payload []byte) int {
	ipLen, proto, typ := header.IPv4MinimumSize, uint8(protoICMP), uint8(header.ICMPv4EchoReply)
	src, dst := k.Dst[:4], k.Src[:4]
	if family == 6 {
		ipLen, proto, typ = header.IPv6MinimumSize, protoICMPv6, uint8(header.ICMPv6EchoReply)
		src, dst = k.Dst[:], k.Src[:]
	}
	total := ipLen + 8 + len(payload)
	putIPHeader(out, family, src, dst, proto, total)
	m := out[ipLen:total]
	m[0], m[1] = typ, 0
	binary.BigEndian.PutUint16(m[4:], k.SrcPort)
	binary.BigEndian.PutUint16(m[6:], seq)
	copy(m[8:], payload)
	setTransportChecksum(out[:total], family, ipLen, 2, proto)
	return total
}
