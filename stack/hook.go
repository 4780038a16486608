package stack

import (
	"context"
	"errors"
	"io"
	"os"
	"time"

	"github.com/tungate/tungate/conntrack"
	"github.com/tungate/tungate/policy"
	"github.com/tungate/tungate/stack/packet"
	"github.com/tungate/tungate/stack/reassembly"
	"github.com/tungate/tungate/stack/verdict"
	"github.com/tungate/tungate/tun"
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
	scratch := make([]byte, packet.IPv6MinMTU)
	dgram := make([]byte, reassembly.MaxDatagram) // a reassembled datagram, while it is handled
	var p packet.Parsed
	failures := 0
	for {
		n, err := dev.Read(bufs, sizes, 0)
		for i := range n {
			s.handle(bufs[i][:sizes[i]], &p, scratch, dgram)
		}
		// Segments GRO held back during this batch go to gVisor now, so
		// coalescing never delays a packet past the read that brought it.
		s.link.flushRx()
		if err == nil {
			failures = 0
			continue
		}
		if errors.Is(err, os.ErrClosed) || ctx.Err() != nil {
			return
		}
		if errors.Is(err, io.ErrShortBuffer) {
			// Larger than the MTU: nothing a client could legitimately send.
			s.ctr.malformed[packet.ReasonIPHeader].Add(1)
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

// handle runs the hook on one packet and carries out its outcome.
// scratch holds synthesized replies. A fragment goes to reassembly first:
// the hook, conntrack and the policy only ever see whole datagrams, built
// in dgram.
func (s *Stack) handle(b []byte, p *packet.Parsed, scratch, dgram []byte) {
	s.ctr.rxPackets.Add(1)
	s.ctr.rxBytes.Add(uint64(len(b)))
	if reassembly.IsFragment(b) {
		if b = s.reassemble(b, p, dgram); b == nil {
			return
		}
	}
	switch s.hook(b, p) {
	case verdict.Pass:
		s.link.inject(b[:p.End], p.Family)
	case verdict.Echo:
		s.forwardEcho(b[:p.End], p)
	case verdict.RejectTCP:
		if p.CT.Key.Proto == packet.ProtoTCP && packet.CanReplyTo(p) {
			s.writeOne(scratch[:packet.TCPReset(scratch, p)], &p.CT.Key)
		}
	case verdict.RejectICMP:
		if packet.CanReplyTo(p) {
			s.writeOne(scratch[:packet.ICMPError(scratch, b, p, packet.PortUnreachable)], &p.CT.Key)
		}
	case verdict.RejectAdmin:
		if packet.CanReplyTo(p) {
			s.writeOne(scratch[:packet.ICMPError(scratch, b, p, packet.AdminProhibited)], &p.CT.Key)
		}
	}
}

// reassemble hands a fragment to the Reassembler and returns the datagram
// it completed, or nil while it is held or when it was dropped (counted
// there). A fragment whose IP header is malformed never gets there: it is
// dropped and counted here like any malformed packet.
func (s *Stack) reassemble(b []byte, p *packet.Parsed, dgram []byte) []byte {
	switch r := packet.Parse(b, p); r {
	case packet.ReasonFragment:
	case packet.ReasonNone:
		return b // not a fragment after all: IsFragment is a cheap look
	default:
		s.ctr.malformed[r].Add(1)
		return nil
	}
	n, res, _ := s.frags.Add(b, dgram)
	if res != reassembly.Complete {
		return nil
	}
	return dgram[:n]
}

// hook is the filter: parse and sanity-check, conntrack, and the policy
// for new flows (and invalid packets, and tracked flows a reload asked to
// recheck). Every verdict it reaches goes to the Applier. On an
// established flow's packet it allocates nothing.
func (s *Stack) hook(b []byte, p *packet.Parsed) verdict.Outcome {
	if r := packet.Parse(b, p); r != packet.ReasonNone {
		s.ctr.malformed[r].Add(1)
		return verdict.Drop
	}
	if p.ICMPErr {
		res := s.ct.TrackICMPErrorQuote(&p.CT, &p.Quote)
		if res.State != conntrack.StateRelated {
			return s.invalid(p)
		}
		s.pol.Load().CountPacketByID(res.Verdict.Rule, p.CT.Len)
		if policy.Action(res.Verdict.Action) == policy.ActionAllow {
			return verdict.Pass
		}
		s.ctr.verdictDrops.Add(1)
		return verdict.Drop
	}
	res := s.ct.Track(&p.CT)
	switch res.State {
	case conntrack.StateInvalid:
		return s.invalid(p)
	case conntrack.StateNew:
		return s.decideNew(p)
	}
	pol := s.pol.Load()
	if s.flows.Rechecking() && s.recheck(pol, p, &res) {
		return verdict.Drop
	}
	pol.CountPacketByID(res.Verdict.Rule, p.CT.Len)
	switch {
	case policy.Action(res.Verdict.Action) != policy.ActionAllow:
		// A payload rule or a recheck ended the flow; its stragglers go
		// nowhere.
		s.ctr.verdictDrops.Add(1)
		return verdict.Drop
	case p.EchoReq:
		return verdict.Echo
	}
	return verdict.Pass
}

// decideNew asks the current policy about a flow's first packet; the
// Applier commits the flow to conntrack only once it is allowed. Decide
// runs once per flow: a forwarder handler that needs the verdict finds it
// in the flow's record.
func (s *Stack) decideNew(p *packet.Parsed) verdict.Outcome {
	pol := s.pol.Load()
	f := s.flowOf(p)
	v := pol.Decide(&f)
	return s.apply.Apply(&verdict.Decision{Stage: verdict.StageNew, Policy: pol, Verdict: v, Key: p.CT.Key, Packet: &p.CT, EchoRequest: p.EchoReq})
}

// invalid handles a packet conntrack calls INVALID: with defaults.invalid,
// or, when some rule lists ct_state "invalid", with the policy's verdict.
// It changes no state in conntrack.
func (s *Stack) invalid(p *packet.Parsed) verdict.Outcome {
	s.ctr.invalid.Add(1)
	pol := s.pol.Load()
	d := verdict.Decision{Stage: verdict.StageInvalid, Policy: pol, Key: p.CT.Key, Packet: &p.CT}
	var v policy.Verdict
	if pol.HasInvalidRules() {
		f := s.flowOf(p)
		f.CtState = policy.CtInvalid
		v = pol.Decide(&f)
	} else {
		d.Stage = verdict.StageInvalidDefault
		v = policy.Verdict{Action: pol.InvalidAction(), Reject: policy.RejectNone, Rule: -1, LogRule: -1}
	}
	d.Verdict = v
	return s.apply.Apply(&d)
}

// recheck decides again, under the current policy and as an established
// flow, the tracked flow packet p belongs to, if a reload asked for it and
// this is the flow's first packet since. It reports whether the flow is
// no longer allowed (the Applier ended it); one still allowed counts
// against the rule that allows it now.
func (s *Stack) recheck(pol *policy.Policy, p *packet.Parsed, res *conntrack.Result) (ended bool) {
	orig := p.CT.Key.Original(res.Dir)
	if !s.flows.TakeRecheck(orig) || policy.Action(res.Verdict.Action) != policy.ActionAllow {
		return false // not marked, or already ending
	}
	f := s.flowOfKey(&orig)
	switch orig.Proto {
	case packet.ProtoICMP:
		f.ICMPType = 8
	case packet.ProtoICMPv6:
		f.ICMPType = 128
	}
	f.CtState = policy.CtEstablished
	v := pol.Decide(&f)
	prior := policy.Verdict{RuleID: res.Verdict.Rule}
	if s.apply.Apply(&verdict.Decision{Stage: verdict.StageRecheck, Policy: pol, Verdict: v, Prior: &prior, Key: orig}) != verdict.Pass {
		return true
	}
	res.Verdict.Rule = v.RuleID
	return false
}

// trackOutbound parses and tracks a packet gVisor emitted (reply
// direction of a flow), so conntrack sees both directions and the deciding
// rule counts both. It returns the flow hash that picks the device, and
// false when the packet must not leave (gVisor's own neighbour discovery
// and MLD, anything malformed).
func (s *Stack) trackOutbound(b []byte) (uint32, bool) {
	var p packet.Parsed
	switch packet.ParseOutbound(b, &p) {
	case packet.ReasonNone:
	case packet.ReasonFragment:
		return s.trackOutboundFragment(b, &p), true
	default:
		s.ctr.txFiltered.Add(1)
		return 0, false
	}
	var res conntrack.Result
	if p.ICMPErr {
		res = s.ct.TrackICMPErrorQuote(&p.CT, &p.Quote)
	} else {
		res = s.ct.Track(&p.CT)
	}
	if res.Found {
		s.pol.Load().CountPacketByID(res.Verdict.Rule, p.CT.Len)
	}
	return packet.FlowHash(&p.CT.Key), true
}

// trackOutboundFragment handles a fragment gVisor emitted for a datagram
// larger than the link MTU (a large UDP answer or echo reply): the first
// fragment is tracked as the flow's reply, the others carry no ports.
// Every fragment of a datagram hashes to one queue, so none overtakes
// another.
func (s *Stack) trackOutboundFragment(b []byte, p *packet.Parsed) uint32 {
	s.ctr.txFragments.Add(1)
	if packet.OutboundFragment(b, p) {
		if res := s.ct.Track(&p.CT); res.Found {
			s.pol.Load().CountPacketByID(res.Verdict.Rule, p.CT.Len)
		}
	}
	k := p.CT.Key
	k.SrcPort, k.DstPort = 0, 0
	return packet.FlowHash(&k)
}

// flowOf describes p's flow for policy.
func (s *Stack) flowOf(p *packet.Parsed) policy.Flow {
	f := s.flowOfKey(&p.CT.Key)
	f.ICMPType = p.CT.ICMPType
	return f
}

// flowOfKey describes the flow with original-direction key k for policy,
// with its source's flow count (max_conns).
func (s *Stack) flowOfKey(k *conntrack.Key) policy.Flow {
	f := policy.Flow{
		Proto:   k.Proto,
		Src:     k.SrcAddr(),
		Dst:     k.DstAddr(),
		SrcPort: k.SrcPort,
		DstPort: k.DstPort,
	}
	f.SrcConns = s.ct.SourceCount(f.Src)
	return f
}
