package policy

import (
	"net/netip"
)

// Protocol classes index Policy.byProto.
const (
	classOther = iota
	classTCP
	classUDP
	classICMP
	classICMPv6
	numProtoClasses
)

const (
	protoBitTCP    = 1 << classTCP
	protoBitUDP    = 1 << classUDP
	protoBitICMP   = 1 << classICMP
	protoBitICMPv6 = 1 << classICMPv6
	protoAll       = 1<<numProtoClasses - 1
	protoBitsPorts = protoBitTCP | protoBitUDP
	protoBitsICMP  = protoBitICMP | protoBitICMPv6
)

func protoClass(proto uint8) int {
	switch proto {
	case 6:
		return classTCP
	case 17:
		return classUDP
	case 1:
		return classICMP
	case 58:
		return classICMPv6
	}
	return classOther
}

// ctDefault is the ct_state of a rule without the key: every state but
// invalid, so that invalid packets reach only rules written for them and
// otherwise fall to defaults.invalid.
const ctDefault = 1<<CtNew | 1<<CtEstablished | 1<<CtRelated

// rule is a compiled [[rule]].
type rule struct {
	name   string
	id     uint32
	action Action // meaningless when isLog
	isLog  bool   // action = "log": note and continue
	audit  bool   // mode = "audit", or a drop/reject under [defaults] mode = "audit"
	reject rejectWith
	log    bool
	protos uint8 // bit per protocol class
	ct     uint8 // bit per CtState

	// dstMin and dstMax bound dstPort, to reject most rules of a long walk
	// without following pointers into the port sets.
	dstMin, dstMax uint16

	icmp                                     *icmpTypes // nil: any type
	src, dst, notSrc, notDst                 addrCond
	srcPort, dstPort, notDstPort, notSrcPort portCond
	maxConns                                 int // -1: no max_conns
	limit                                    *limiter
	addTo                                    *addToAction

	payload *payloadRule // non-nil: the rule is armed, never decides in Decide
	l7      *l7Cond      // non-nil: the rule needs L7 fields (Resume, DecideDNS)
}

// addToAction is a compiled add_to.
type addToAction struct {
	set   *dynSet
	name  string
	src   bool
	flush bool
}

// cond names a rule condition, in the order they are checked; Explain
// reports the first that fails.
type cond uint8

const (
	condNone cond = iota
	condProto
	condCtState
	condICMPType
	condDstPort
	condNotDstPort
	condSrcPort
	condNotSrcPort
	condDst
	condSrc
	condNotDst
	condNotSrc
	condMaxConns
	condLimit
)

// matchIn is a flow prepared for matching: addresses unmapped, the
// clock read at most once.
type matchIn struct {
	src, dst     netip.Addr
	sport, dport uint16
	icmpType     uint8
	icmpV6       bool
	ctBit        uint8
	srcConns     int
	clk          clock
	// srcMemo and dstMemo hold the last static set looked up for src
	// and dst (addrCond.matchMemo).
	srcMemo, dstMemo addrMemo
}

// clock reads the policy clock lazily: most decisions touch no dynamic
// set and no limit, and should not pay for reading the time.
type clock struct {
	now func() int64
	t   int64
}

func (c *clock) get() int64 {
	if c.t == 0 {
		c.t = c.now()
	}
	return c.t
}

func (p *Policy) prepare(f *Flow, in *matchIn) {
	*in = matchIn{
		src: f.Src.Unmap(), dst: f.Dst.Unmap(),
		sport: f.SrcPort, dport: f.DstPort,
		icmpType: f.ICMPType, icmpV6: f.Proto == 58,
		ctBit:    1 << (f.CtState & 7),
		srcConns: f.SrcConns,
		clk:      clock{now: p.now},
	}
}

// firstFail returns the first stateless condition of r that the flow
// fails, condNone when all hold; the protocol was already matched by the
// byProto dispatch. Ports are only present on tcp/udp rules, so a flow
// reaching a port check is tcp or udp; likewise icmp_type.
func (r *rule) firstFail(in *matchIn) cond {
	if r.ct&in.ctBit == 0 {
		return condCtState
	}
	if r.icmp != nil && !r.icmp.has(in.icmpV6, in.icmpType) {
		return condICMPType
	}
	if r.dstPort != nil && (in.dport < r.dstMin || in.dport > r.dstMax || !r.dstPort.match(in.dport)) {
		return condDstPort
	}
	if r.notDstPort != nil && r.notDstPort.match(in.dport) {
		return condNotDstPort
	}
	if r.srcPort != nil && !r.srcPort.match(in.sport) {
		return condSrcPort
	}
	if r.notSrcPort != nil && r.notSrcPort.match(in.sport) {
		return condNotSrcPort
	}
	if r.dst != nil && !r.dst.matchMemo(in.dst, &in.clk, &in.dstMemo) {
		return condDst
	}
	if r.src != nil && !r.src.matchMemo(in.src, &in.clk, &in.srcMemo) {
		return condSrc
	}
	if r.notDst != nil && r.notDst.matchMemo(in.dst, &in.clk, &in.dstMemo) {
		return condNotDst
	}
	if r.notSrc != nil && r.notSrc.matchMemo(in.src, &in.clk, &in.srcMemo) {
		return condNotSrc
	}
	if r.maxConns >= 0 && in.srcConns <= r.maxConns {
		return condMaxConns
	}
	return condNone
}

// matchL34 is every condition of r but the protocol, the limit and the
// payload.
func (r *rule) matchL34(in *matchIn) bool { return r.firstFail(in) == condNone }

// limitKey is the address a rule's limit counts against.
func (r *rule) limitKey(in *matchIn) netip.Addr {
	if r.limit.per == perDst {
		return in.dst
	}
	return in.src
}

// terminal reports whether a match of r ends evaluation whatever the flow's
// payload: the property shadowing relies on.
func (r *rule) terminal() bool {
	return !r.isLog && !r.audit && r.payload == nil && r.l7 == nil
}
