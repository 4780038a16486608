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
	hookDrop        hookAction = iota // discard (already counted)
	hookInject                        // hand to gVisor
	hookEcho                          // an allowed echo request: forward it for real, never to gVisor
	hookRejectTCP                     // answer with a TCP RST
	hookRejectICMP                    // answer with ICMP / ICMPv6 port unreachable
	hookRejectAdmin                   // answer with ICMP / ICMPv6 administratively prohibited
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
	case hookRejectAdmin:
		if canReplyTo(p) {
			s.writeOne(scratch[:buildAdminProhibited(scratch, b, p)], &p.ct.Key)
		}
	}
}

// hook is the filter: parse and sanity-check, conntrack, and policy for
// new flows (and invalid packets, and tracked flows a reload asked to
// recheck). On an established flow's packet it allocates nothing.
func (s *Stack) hook(b []byte, p *parsed) hookAction {
	s.ctr.rxPackets.Add(1)
	s.ctr.rxBytes.Add(uint64(len(b)))
	if r := parsePacket(b, p); r != reasonNone {
		s.ctr.malformed[r].Add(1)
		return hookDrop
	}
	if p.icmpErr {
		res := s.ct.TrackICMPErrorQuote(&p.ct, &p.quote)
		if res.State != conntrack.StateRelated {
			return s.invalid(p)
		}
		s.pol.Load().CountPacketByID(res.Verdict.Rule, p.ct.Len)
		if policy.Action(res.Verdict.Action) == policy.ActionAllow {
			return hookInject
		}
		s.ctr.verdictDrops.Add(1)
		return hookDrop
	}
	res := s.ct.Track(&p.ct)
	switch res.State {
	case conntrack.StateInvalid:
		return s.invalid(p)
	case conntrack.StateNew:
		return s.decideNew(p)
	}
	pol := s.pol.Load()
	if s.rechecks.pending.Load() != 0 {
		if act, ended := s.recheck(pol, p, &res); ended {
			return act
		}
	}
	pol.CountPacketByID(res.Verdict.Rule, p.ct.Len)
	switch {
	case policy.Action(res.Verdict.Action) != policy.ActionAllow:
		// A payload rule or a recheck ended the flow; its stragglers go
		// nowhere.
		s.ctr.verdictDrops.Add(1)
		return hookDrop
	case p.echoReq:
		return hookEcho
	}
	return hookInject
}

// invalid handles a packet conntrack calls INVALID: with defaults.invalid,
// or, when some rule lists ct_state "invalid", with the policy's verdict.
func (s *Stack) invalid(p *parsed) hookAction {
	s.ctr.invalid.Add(1)
	pol := s.pol.Load()
	if !pol.HasInvalidRules() {
		act := pol.InvalidAction()
		if dec := pol.Log().Decisions; (act != policy.ActionAllow && dec != "none") || dec == "all" {
			s.logPacket("", act, p, reasonInvalid, "")
		}
		return s.enforce(act, policy.RejectNone, p)
	}
	f := s.flowOf(p)
	f.CtState = policy.CtInvalid
	v := pol.Decide(&f)
	s.afterVerdict(pol, &v, p)
	pol.CountPacket(v.Rule, p.ct.Len)
	if v.Log {
		name := ""
		if v.Rule >= 0 {
			name = pol.RuleNameAt(v.Rule)
		}
		s.logPacket(name, v.Action, p, reasonInvalid, "")
	}
	return s.enforce(v.Action, v.Reject, p)
}

// enforce turns an invalid packet's action into what the hook does with
// it; a reject is counted and answered as kind says.
func (s *Stack) enforce(act policy.Action, kind policy.RejectKind, p *parsed) hookAction {
	switch act {
	case policy.ActionAllow:
		return hookInject
	case policy.ActionReject:
		s.ctr.policyRejects.Add(1)
		return s.reject(kind, p)
	}
	return hookDrop
}

// decideNew asks the current policy about a flow's first packet, acts on
// the verdict's side effects (logs, audits, counters, add_to), and commits
// the flow to conntrack only once it is allowed. Decide runs once per flow:
// the forwarder reuses this verdict (flowRegistry.keep).
func (s *Stack) decideNew(p *parsed) hookAction {
	pol := s.pol.Load()
	f := s.flowOf(p)
	v := pol.Decide(&f)
	s.afterVerdict(pol, &v, p)
	pol.CountPacket(v.Rule, p.ct.Len)
	reason := reasonRule
	if v.Rule < 0 {
		reason = reasonDefault
	}
	if v.Action == policy.ActionAllow {
		return s.commitAllowed(pol, &v, &f, p, reason)
	}
	if v.Log {
		s.logPacket(pol.RuleNameAt(v.Rule), v.Action, p, reason, "")
	}
	if v.Action == policy.ActionReject {
		s.ctr.policyRejects.Add(1)
		return s.reject(v.Reject, p)
	}
	s.ctr.policyDrops.Add(1)
	return hookDrop
}

// commitAllowed commits an allowed first packet. An inspected TCP flow's
// verdict is kept for its forwarder handler first; without room for it
// the SYN is dropped, since its payload rules could not be enforced.
//
// A flow pending on an L7 field keeps its verdict the same way: TCP for
// the forwarder handler, which completes the handshake, reads the field
// and resumes the rules (pending.go); UDP, pending on dns.qname, in the L7
// table for as long as the flow lives, since its handler decides every
// query and may run again for the same flow (dnsfwd.go).
func (s *Stack) commitAllowed(pol *policy.Policy, v *policy.Verdict, f *policy.Flow, p *parsed, reason string) hookAction {
	kept := (v.Armed || v.Pending) && p.ct.Key.Proto == protoTCP
	if kept && !s.flowReg.keep(p.ct.Key, armedFlow{pol: pol, v: *v, at: time.Now()}) {
		s.ctr.inspectBusy.Add(1)
		return hookDrop
	}
	keptDNS := v.Pending && p.ct.Key.Proto == protoUDP
	if p.ct.Key.Proto == protoUDP {
		if keptDNS {
			if !s.l7.keepDNS(p.ct.Key, armedFlow{pol: pol, v: *v, at: time.Now()}) {
				s.ctr.inspectBusy.Add(1)
				return hookDrop
			}
		} else {
			s.l7.forget(p.ct.Key)
		}
	}
	err := s.ct.Commit(&p.ct, conntrack.Verdict{Action: uint8(policy.ActionAllow), Rule: v.RuleID})
	if err != nil {
		if kept {
			s.flowReg.take(p.ct.Key)
		}
		if keptDNS {
			s.l7.forget(p.ct.Key)
		}
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
	if v.Log {
		s.logPacket(pol.RuleNameAt(v.Rule), v.Action, p, reason, "")
	}
	if p.echoReq {
		return hookEcho
	}
	return hookInject
}

// afterVerdict carries out what a verdict asks besides its action: the
// line of a matched action="log" rule, one would-<action> line per audit
// hit, the rule counters, and add_to (with flush_flows handed to the
// flusher, off the packet path).
func (s *Stack) afterVerdict(pol *policy.Policy, v *policy.Verdict, p *parsed) {
	if v.LogRule >= 0 {
		s.logPacket(pol.RuleNameAt(v.LogRule), policy.Action(0), p, reasonLogRule, "log")
	}
	for _, a := range v.Audits() {
		s.ctr.auditHits.Add(1)
		s.logPacket(pol.RuleNameAt(int(a.Rule)), a.Action, p, reasonAudit, wouldName(a.Action))
	}
	pol.CountVerdict(v)
	if v.NAddTo > 0 {
		flush, n := pol.ApplyAddTo(v)
		for i := range n {
			s.queueFlush(flush[i])
		}
	}
}

// wouldName is the logged action of an audit hit.
func wouldName(a policy.Action) string {
	switch a {
	case policy.ActionAllow:
		return "would-allow"
	case policy.ActionReject:
		return "would-reject"
	}
	return "would-drop"
}

// reject picks the answer to a rejected packet, or a drop when [reject]
// max_rate is exhausted (counted: RejectsLimited). RejectNone is
// defaults.invalid = "reject": a reset for TCP, port unreachable otherwise.
func (s *Stack) reject(kind policy.RejectKind, p *parsed) hookAction {
	if !s.rejects.take() {
		s.ctr.rejectsLimited.Add(1)
		return hookDrop
	}
	tcp := p.ct.Key.Proto == protoTCP
	switch {
	case kind == policy.RejectICMPAdminProhibited:
		return hookRejectAdmin
	case tcp && (kind == policy.RejectTCPReset || kind == policy.RejectNone):
		return hookRejectTCP
	}
	return hookRejectICMP
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
// direction of a flow), so conntrack sees both directions and the deciding
// rule counts both. It returns the flow hash that picks the device, and
// false when the packet must not leave (gVisor's own neighbour discovery
// and MLD, anything malformed).
func (s *Stack) trackOutbound(b []byte) (uint32, bool) {
	var p parsed
	if parseOutbound(b, &p) != reasonNone {
		s.ctr.txFiltered.Add(1)
		return 0, false
	}
	var res conntrack.Result
	if p.icmpErr {
		res = s.ct.TrackICMPErrorQuote(&p.ct, &p.quote)
	} else {
		res = s.ct.Track(&p.ct)
	}
	if res.Found {
		s.pol.Load().CountPacketByID(res.Verdict.Rule, p.ct.Len)
	}
	return flowHash(&p.ct.Key), true
}

// sourceCounter is the conntrack accessor max_conns needs: how many flows
// the table tracks for a source address.
type sourceCounter interface {
	SourceCount(netip.Addr) int
}

// flowOf describes p's flow for policy.
func (s *Stack) flowOf(p *parsed) policy.Flow {
	f := s.flowOfKey(&p.ct.Key, p.family)
	f.ICMPType = p.ct.ICMPType
	return f
}

// flowOfKey describes the flow with original-direction key k for policy,
// with its source's flow count when conntrack offers one.
func (s *Stack) flowOfKey(k *conntrack.Key, family uint8) policy.Flow {
	f := policy.Flow{
		Proto:   k.Proto,
		Src:     addrOf(&k.Src, family),
		Dst:     addrOf(&k.Dst, family),
		SrcPort: k.SrcPort,
		DstPort: k.DstPort,
	}
	if s.srcCount != nil {
		f.SrcConns = s.srcCount.SourceCount(f.Src)
	}
	return f
}

// addrOf converts a conntrack address; it does not allocate.
func addrOf(a *[16]byte, family uint8) netip.Addr {
	if family == 4 {
		return netip.AddrFrom4([4]byte(a[:4]))
	}
	return netip.AddrFrom16(*a)
}

// logPacket writes a decision about packet p. action is ignored when
// actionName is set (for action="log" rules and audit hits).
func (s *Stack) logPacket(rule string, action policy.Action, p *parsed, reason, actionName string) {
	if actionName == "" {
		actionName = action.String()
	}
	s.logKey(rule, actionName, &p.ct.Key, reason, "")
}

// logKey writes a decision about the flow direction k.
func (s *Stack) logKey(rule, action string, k *conntrack.Key, reason, pattern string) {
	s.dlog.write(&decisionRecord{
		rule:    rule,
		action:  action,
		proto:   k.Proto,
		src:     netip.AddrPortFrom(addrOf(&k.Src, k.Family), k.SrcPort),
		dst:     netip.AddrPortFrom(addrOf(&k.Dst, k.Family), k.DstPort),
		reason:  reason,
		pattern: pattern,
	})
}

// logField writes a decision an L7 field (or a payload pattern) made
// about the flow direction k, with the field's value.
func (s *Stack) logField(rule, action string, k *conntrack.Key, reason string, field policy.L7Field, value string) {
	r := decisionRecord{
		rule:   rule,
		action: action,
		proto:  k.Proto,
		src:    netip.AddrPortFrom(addrOf(&k.Src, k.Family), k.SrcPort),
		dst:    netip.AddrPortFrom(addrOf(&k.Dst, k.Family), k.DstPort),
		reason: reason,
	}
	if field == policy.FieldPayload {
		r.pattern = value
	} else if key := field.LogKey(); key != "" {
		r.field, r.value = key, value
	}
	s.dlog.write(&r)
}

// echoSeq reads the sequence number of the echo message at p.l4.
func echoSeq(b []byte, p *parsed) uint16 { return binary.BigEndian.Uint16(b[p.l4+6:]) }
