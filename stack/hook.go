package stack

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"os"
	"time"

	"github.com/tungate/tungate/conntrack"
	"github.com/tungate/tungate/policy"
	"github.com/tungate/tungate/tun"
)

// hookAction is what the filter hook decided for one inbound packet.
type hookAction uint8

const (
	hookDrop       hookAction = iota // discard (already counted)
	hookInject                       // hand to gVisor
	hookEcho                         // an allowed echo request: forward it for real, never to gVisor
	hookRejectTCP                    // answer with a TCP RST
	hookRejectICMP                   // answer with ICMP / ICMPv6 port unreachable
)

// readLoop is one device's reader. It ends when the device is closed (Run
// closes it when ctx is done).
func (s *Stack) readLoop(ctx context.Context, dev tun.Device) {
	batch := max(dev.BatchSize(), 1)
	bufs := make([][]byte, batch)
	for i := range bufs {
		bufs[i] = make([]byte, s.mtu)
	}
	sizes := make([]int, batch)
	scratch := make([]byte, ipv6MinMTU)
	var p parsed
	failures := 0
	for {
		n, err := dev.Read(bufs, sizes, 0)
		for i := range n {
			s.handle(bufs[i][:sizes[i]], &p, scratch)
		}
		if err == nil {
			failures = 0
			continue
		}
		if errors.Is(err, os.ErrClosed) || ctx.Err() != nil {
			return
		}
		if errors.Is(err, io.ErrShortBuffer) {
			// Larger than the MTU: nothing a client could legitimately send.
			s.ctr.malformed[reasonIPHeader].Add(1)
			continue
		}
		failures++
		if failures == 1 {
			s.log.Warn("tun read failed", "err", err)
		}
		// A persistent error must not spin a core; the device's close (or
		// recovery) ends this.
		if failures > 3 {
			select {
			case <-ctx.Done():
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
}

// handle runs the hook on one packet and carries out its decision.
// scratch holds synthesized replies.
func (s *Stack) handle(b []byte, p *parsed, scratch []byte) {
	switch s.hook(b, p) {
	case hookInject:
		s.link.inject(b[:p.end], p.family)
	case hookEcho:
		s.forwardEcho(b[:p.end], p)
	case hookRejectTCP:
		if p.ct.Key.Proto == protoTCP && canReplyTo(p) {
			s.writeOne(scratch[:buildTCPReset(scratch, b, p)], &p.ct.Key)
		}
	case hookRejectICMP:
		if canReplyTo(p) {
			s.writeOne(scratch[:buildPortUnreachable(scratch, b, p)], &p.ct.Key)
		}
	}
}

// hook is the filter: parse and sanity-check, conntrack, and policy for
// new flows. On an established flow's packet it allocates nothing.
func (s *Stack) hook(b []byte, p *parsed) hookAction {
	s.ctr.rxPackets.Add(1)
	s.ctr.rxBytes.Add(uint64(len(b)))
	if r := parsePacket(b, p); r != reasonNone {
		s.ctr.malformed[r].Add(1)
		return hookDrop
	}
	if p.icmpErr {
		res := s.ct.TrackICMPError(&p.ct, p.inner)
		if res.State == conntrack.StateRelated && policy.Action(res.Verdict.Action) == policy.ActionAllow {
			return hookInject
		}
		return s.invalid(p)
	}
	res := s.ct.Track(&p.ct)
	switch {
	case res.State == conntrack.StateInvalid:
		return s.invalid(p)
	case res.State == conntrack.StateNew:
		return s.decideNew(p)
	case policy.Action(res.Verdict.Action) != policy.ActionAllow:
		// A payload rule tore the flow down; its stragglers go nowhere.
		s.ctr.verdictDrops.Add(1)
		return hookDrop
	case p.echoReq:
		return hookEcho
	}
	return hookInject
}

// invalid applies defaults.invalid to a packet conntrack calls INVALID.
func (s *Stack) invalid(p *parsed) hookAction {
	s.ctr.invalid.Add(1)
	pol := s.pol.Load()
	act := pol.InvalidAction()
	if dec := pol.Log().Decisions; (act != policy.ActionAllow && dec != "none") || dec == "all" {
		s.logPacket("", act, p, reasonInvalid, "")
	}
	switch act {
	case policy.ActionAllow:
		return hookInject
	case policy.ActionReject:
		if p.ct.Key.Proto == protoTCP {
			return hookRejectTCP
		}
		return hookRejectICMP
	}
	return hookDrop
}

// decideNew asks the current policy about a flow's first packet, and
// commits the flow to conntrack only once it is allowed.
func (s *Stack) decideNew(p *parsed) hookAction {
	pol := s.pol.Load()
	f := flowOf(p)
	v := pol.Decide(&f)
	if v.LogRule >= 0 {
		s.logPacket(pol.RuleNameAt(v.LogRule), policy.Action(0), p, reasonLogRule, "log")
	}
	audit := v.Action != policy.ActionAllow && pol.Mode() == policy.ModeAudit
	pol.CountFlow(v.Rule)
	reason := reasonRule
	if v.Rule < 0 {
		reason = reasonDefault
	}
	if v.Action == policy.ActionAllow || audit {
		err := s.ct.Commit(&p.ct, conntrack.Verdict{Action: uint8(policy.ActionAllow), Rule: v.RuleID})
		if err != nil {
			s.ctr.commitFailures.Add(1)
			if pol.Log().Decisions != "none" {
				r := reasonTableFull
				if errors.Is(err, conntrack.ErrSourceLimit) {
					r = reasonSrcLimit
				}
				s.logPacket(pol.RuleNameAt(v.Rule), policy.ActionDrop, p, r, "")
			}
			return hookDrop
		}
		s.ctr.newFlows.Add(1)
		if audit {
			s.logPacket(pol.RuleNameAt(v.Rule), v.Action, p, reasonAudit, "")
		} else if v.Log {
			s.logPacket(pol.RuleNameAt(v.Rule), v.Action, p, reason, "")
		}
		if p.echoReq {
			return hookEcho
		}
		return hookInject
	}
	if v.Log {
		s.logPacket(pol.RuleNameAt(v.Rule), v.Action, p, reason, "")
	}
	if v.Action == policy.ActionReject {
		s.ctr.policyRejects.Add(1)
		if v.Reject == policy.RejectTCPReset && p.ct.Key.Proto == protoTCP {
			return hookRejectTCP
		}
		return hookRejectICMP
	}
	s.ctr.policyDrops.Add(1)
	return hookDrop
}

// canReplyTo refuses to answer what must never be answered (RFC 1122
// §3.2.2, RFC 4443 §2.4 (e), RFC 9293 §3.10.7.1): ICMP errors, TCP
// resets, and packets from or to unspecified, multicast or broadcast
// addresses.
func canReplyTo(p *parsed) bool {
	if p.icmpErr || (p.ct.Key.Proto == protoTCP && p.ct.TCPFlags&0x04 != 0) {
		return false
	}
	src := addrOf(&p.ct.Key.Src, p.family)
	dst := addrOf(&p.ct.Key.Dst, p.family)
	if src.IsUnspecified() || src.IsMulticast() || dst.IsMulticast() {
		return false
	}
	if p.family == 4 && (src == netip.IPv4Unspecified() || src.As4() == [4]byte{255, 255, 255, 255} || dst.As4() == [4]byte{255, 255, 255, 255}) {
		return false
	}
	return true
}

// trackOutbound parses and tracks a packet gVisor emitted (reply
// direction of a flow), so conntrack sees both directions. It returns the
// flow hash that picks the device, and false when the packet must not leave
// (gVisor's own neighbour discovery and MLD, anything malformed).
func (s *Stack) trackOutbound(b []byte) (uint32, bool) {
	var p parsed
	if parseOutbound(b, &p) != reasonNone {
		s.ctr.txFiltered.Add(1)
		return 0, false
	}
	if p.icmpErr {
		s.ct.TrackICMPError(&p.ct, p.inner)
	} else {
		s.ct.Track(&p.ct)
	}
	return flowHash(&p.ct.Key), true
}

// flowOf describes p's flow for policy.
func flowOf(p *parsed) policy.Flow {
	k := &p.ct.Key
	return policy.Flow{
		Proto:    k.Proto,
		Src:      addrOf(&k.Src, p.family),
		Dst:      addrOf(&k.Dst, p.family),
		SrcPort:  k.SrcPort,
		DstPort:  k.DstPort,
		ICMPType: p.ct.ICMPType,
	}
}

// addrOf converts a conntrack address; it does not allocate.
func addrOf(a *[16]byte, family uint8) netip.Addr {
	if family == 4 {
		return netip.AddrFrom4([4]byte(a[:4]))
	}
	return netip.AddrFrom16(*a)
}

// logPacket writes a decision about packet p. action is ignored when
// actionName is set (for action="log" rules).
func (s *Stack) logPacket(rule string, action policy.Action, p *parsed, reason, actionName string) {
	if actionName == "" {
		actionName = action.String()
	}
	k := &p.ct.Key
	s.dlog.write(&decisionRecord{
		rule:   rule,
		action: actionName,
		proto:  k.Proto,
		src:    netip.AddrPortFrom(addrOf(&k.Src, p.family), k.SrcPort),
		dst:    netip.AddrPortFrom(addrOf(&k.Dst, p.family), k.DstPort),
		reason: reason,
	})
}

// echoSeq reads the sequence number of the echo message at p.l4.
func echoSeq(b []byte, p *parsed) uint16 { return binary.BigEndian.Uint16(b[p.l4+6:]) }
