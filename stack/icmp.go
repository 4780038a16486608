package stack

import (
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tungate/tungate/stack/packet"
)

// forwardEcho hands an allowed echo request to the Echoer instead of
// gVisor (which would answer it itself, lying that the destination is up).
// The client gets a reply only when the real destination answered.
func (s *Stack) forwardEcho(b []byte, p *packet.Parsed) {
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
	key := p.CT.Key
	family := p.Family
	seq := p.EchoSeq(b)
	payload := append([]byte(nil), b[p.Payload:p.End]...)
	dst := key.DstAddr()
	s.ctr.echoForwarded.Add(1)
	// Owned by the Stack: ends when the reply came, the timeout passed or
	// flowCtx was cancelled by Run's teardown.
	go func() {
		defer s.wg.Done()
		defer func() { <-s.echoSem }()
		reply, err := s.echo.Echo(s.flowCtx, dst, key.SrcPort, seq, payload, echoTimeout)
		if err != nil {
			return
		}
		out := make([]byte, header.IPv6MinimumSize+header.ICMPv6EchoMinimumSize+len(reply))
		out = out[:packet.EchoReply(out, family, &key, seq, reply)]
		var rp packet.Parsed
		if packet.ParseOutbound(out, &rp) != packet.ReasonNone {
			return
		}
		s.ct.Track(&rp.CT)
		s.ctr.echoReplies.Add(1)
		s.writeOne(out, &key)
	}()
}
