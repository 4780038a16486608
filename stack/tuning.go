package stack

import (
	"gvisor.dev/gvisor/pkg/tcpip"
	gstack "gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
)

// clientTimeWait is how long gVisor keeps a client-facing endpoint in
// TIME_WAIT after the gateway closed first (the server's FIN relayed). It
// is zero because that TIME_WAIT only does harm here: gVisor hands a SYN
// that reopens a TIME_WAIT 4-tuple to a listening endpoint and drops it
// otherwise, and the forwarder is no listener, so the SYN vanishes without
// a reply until the timer (60 s by default) ends. Linux clients come back
// to the same source port after about 3,200 connections to one
// destination (connect() steps through the range by a random stride), so
// a busy client stalls within seconds. Nothing is lost: the gateway is not
// an endpoint of the connection, the real peers keep their own TIME_WAIT,
// and conntrack keeps the flow's TIME_WAIT entry and reopens it on a new
// SYN. A late retransmitted FIN from the client now gets a RST instead of
// an ACK, which ends its LAST_ACK just the same.
const clientTimeWait = 0

// lossRecovery is the loss detection of the client-facing endpoints:
// SACK-based recovery (RFC 6675, still on: SACK is enabled) without RACK.
// gVisor's RACK (its default) costs the sending side dearly here: with
// it, server-to-client bulk transfer ran at about half the rate at the
// same CPU on the benchmark (4 streams, offload: 4.0 against 7.5 Gbit/s,
// three alternating runs each), and the client-facing leg is a LAN, where
// RACK's finer reordering and tail-loss handling buys little.
const lossRecovery = tcpip.TCPRecovery(0)

// tuneTCP sets gVisor TCP options the Stack depends on beyond buffers and
// congestion control. buildNetstack calls it before any endpoint exists.
func tuneTCP(gs *gstack.Stack) tcpip.Error {
	tw := tcpip.TCPTimeWaitTimeoutOption(clientTimeWait)
	if err := gs.SetTransportProtocolOption(tcp.ProtocolNumber, &tw); err != nil {
		return err
	}
	rec := lossRecovery
	return gs.SetTransportProtocolOption(tcp.ProtocolNumber, &rec)
}
