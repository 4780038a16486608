package control

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tungate/tungate/conntrack"
	"github.com/tungate/tungate/policy"
)

// Flow is one conntrack entry as the control socket lists it. The JSON
// field names are part of the protocol.
type Flow struct {
	Proto     string `json:"proto"` // tcp, udp, icmp, icmpv6 or the number
	ProtoNum  uint8  `json:"proto_num"`
	Family    uint8  `json:"family"`          // 4 or 6
	State     string `json:"state,omitempty"` // TCP state (Linux names); empty for other protocols
	TimeoutMS int64  `json:"timeout_ms"`      // time left before expiry
	Orig      Tuple  `json:"orig"`
	Reply     Tuple  `json:"reply"`
	Assured   bool   `json:"assured"`
	SeenReply bool   `json:"seen_reply"`
	Action    string `json:"action"`  // the verdict cached on the flow
	RuleID    uint32 `json:"rule_id"` // stable across reloads; 0 = defaults.policy
	Rule      string `json:"rule"`    // "default" for defaults.policy
	// What payload inspection read on the flow (see L7Source); empty
	// when it read nothing.
	SNI      string `json:"sni,omitempty"`
	HTTPHost string `json:"http_host,omitempty"`
	DNSQName string `json:"dns_qname,omitempty"`
}

// Tuple is one direction of a flow with its counters. For ICMP echo,
// SrcPort is the identifier and DstPort is 0.
type Tuple struct {
	Src     netip.Addr `json:"src"`
	Dst     netip.Addr `json:"dst"`
	SrcPort uint16     `json:"sport"`
	DstPort uint16     `json:"dport"`
	Packets uint64     `json:"packets"`
	Bytes   uint64     `json:"bytes"`
	// Window is the TCP window tracker's view of this direction's sender;
	// absent for other protocols.
	Window *Window `json:"window,omitempty"`
}

// Window is conntrack.TCPWindow under stable JSON names.
type Window struct {
	End     uint32 `json:"end"`
	MaxEnd  uint32 `json:"max_end"`
	MaxWin  uint32 `json:"max_win"`
	WScale  uint8  `json:"wscale"` // 0: window scaling not in use
	Liberal bool   `json:"liberal,omitempty"`
}

// FlowFrom converts a table entry, naming its rule through p (names are
// interned process-wide, so flows decided by an older policy still resolve).
func FlowFrom(fi conntrack.FlowInfo, p *policy.Policy) Flow {
	f := Flow{
		Proto:     protoName(fi.Proto),
		ProtoNum:  fi.Proto,
		Family:    fi.Orig.Family,
		State:     fi.TCPState,
		TimeoutMS: fi.Timeout.Milliseconds(),
		Orig:      tupleFrom(fi.Orig, conntrack.DirOriginal, &fi),
		Reply:     tupleFrom(fi.Reply, conntrack.DirReply, &fi),
		Assured:   fi.Assured,
		SeenReply: fi.SeenReply,
		Action:    policy.Action(fi.Verdict.Action).String(),
		RuleID:    fi.Verdict.Rule,
		Rule:      "default",
	}
	if fi.Verdict.Rule != 0 {
		if f.Rule = p.RuleName(fi.Verdict.Rule); f.Rule == "" {
			f.Rule = "#" + strconv.FormatUint(uint64(fi.Verdict.Rule), 10)
		}
	}
	return f
}

func tupleFrom(k conntrack.Key, d conntrack.Dir, fi *conntrack.FlowInfo) Tuple {
	t := Tuple{
		Src: k.SrcAddr(), Dst: k.DstAddr(),
		SrcPort: k.SrcPort, DstPort: k.DstPort,
		Packets: fi.Packets[d], Bytes: fi.Bytes[d],
	}
	if fi.Proto == 6 {
		w := fi.Window[d]
		t.Window = &Window{End: w.End, MaxEnd: w.MaxEnd, MaxWin: w.MaxWin, WScale: w.WScale, Liberal: w.Liberal}
	}
	return t
}

var protoNames = map[uint8]string{6: "tcp", 17: "udp", 1: "icmp", 58: "icmpv6"}

func protoName(n uint8) string {
	if s, ok := protoNames[n]; ok {
		return s
	}
	return strconv.Itoa(int(n))
}

func isICMP(proto uint8) bool { return proto == 1 || proto == 58 }

// Key builds the table key the arguments name.
func (a DeleteArgs) Key() (conntrack.Key, error) {
	var k conntrack.Key
	proto, ok := protoNumber(a.Proto)
	if !ok {
		return k, fmt.Errorf("unknown protocol %q (want tcp, udp, icmp or icmpv6)", a.Proto)
	}
	k.Proto = proto
	icmp := isICMP(k.Proto)
	src, err := parseEndpoint(a.Src, icmp)
	if err != nil {
		return k, fmt.Errorf("src: %w", err)
	}
	dst, err := parseEndpoint(a.Dst, icmp)
	if err != nil {
		return k, fmt.Errorf("dst: %w", err)
	}
	if src.Addr().Is4() != dst.Addr().Is4() {
		return k, fmt.Errorf("src %s and dst %s are of different address families", src.Addr(), dst.Addr())
	}
	if icmp && dst.Port() != 0 {
		return k, fmt.Errorf("dst: an ICMP echo flow has no destination port (the identifier goes with src)")
	}
	if (k.Proto == 1) != src.Addr().Is4() && icmp {
		return k, fmt.Errorf("%s does not go with %s addresses", a.Proto, familyName(src.Addr()))
	}
	if src.Addr().Is4() {
		k.Family = 4
		s4, d4 := src.Addr().As4(), dst.Addr().As4()
		copy(k.Src[:], s4[:])
		copy(k.Dst[:], d4[:])
	} else {
		k.Family = 6
		k.Src, k.Dst = src.Addr().As16(), dst.Addr().As16()
	}
	k.SrcPort, k.DstPort = src.Port(), dst.Port()
	return k, nil
}

func familyName(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// parseEndpoint accepts IP:PORT ([IPv6]:PORT), or a bare IP for ICMP.
func parseEndpoint(s string, icmp bool) (netip.AddrPort, error) {
	if s == "" {
		return netip.AddrPort{}, fmt.Errorf("missing (want IP:PORT)")
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		a, aerr := netip.ParseAddr(s)
		if !icmp || aerr != nil {
			return netip.AddrPort{}, fmt.Errorf("%q is not IP:PORT", s)
		}
		ap = netip.AddrPortFrom(a, 0)
	}
	if ap.Addr().Zone() != "" {
		return netip.AddrPort{}, fmt.Errorf("%q: zones are not tracked", s)
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// AppendText appends f as one line in the style of `conntrack -L`, with the
// deciding rule at the end:
//
//	tcp      6 431999 ESTABLISHED src=… dst=… sport=… dport=… packets=… bytes=… src=… … [ASSURED] rule=NAME
func (f *Flow) AppendText(b []byte) []byte { return f.appendText(b, false) }

// AppendTextVerbose is AppendText with each TCP direction's window state
// after its counters, in the spirit of pfctl -ss -v:
//
//	… packets=… bytes=… win=[END:MAXEND] maxwin=N wscale=S …
func (f *Flow) AppendTextVerbose(b []byte) []byte { return f.appendText(b, true) }

func (f *Flow) appendText(b []byte, verbose bool) []byte {
	b = fmt.Appendf(b, "%-8s %d %d ", f.Proto, f.ProtoNum, f.TimeoutMS/1000)
	if f.State != "" {
		b = append(b, f.State...)
		b = append(b, ' ')
	}
	b = f.Orig.appendText(b, isICMP(f.ProtoNum), verbose)
	if !f.SeenReply {
		b = append(b, "[UNREPLIED] "...)
	}
	b = f.Reply.appendText(b, isICMP(f.ProtoNum), verbose)
	if f.Assured {
		b = append(b, "[ASSURED] "...)
	}
	for _, kv := range [...]struct{ k, v string }{{"sni=", f.SNI}, {"http_host=", f.HTTPHost}, {"dns_qname=", f.DNSQName}} {
		if kv.v != "" {
			b = append(b, kv.k...)
			b = strconv.AppendQuote(b, kv.v)
			b = append(b, ' ')
		}
	}
	b = append(b, "rule="...)
	return append(b, f.Rule...)
}

func (t *Tuple) appendText(b []byte, icmp, verbose bool) []byte {
	b = fmt.Appendf(b, "src=%s dst=%s ", t.Src, t.Dst)
	if icmp {
		b = fmt.Appendf(b, "id=%d ", t.SrcPort|t.DstPort)
	} else {
		b = fmt.Appendf(b, "sport=%d dport=%d ", t.SrcPort, t.DstPort)
	}
	b = fmt.Appendf(b, "packets=%d bytes=%d ", t.Packets, t.Bytes)
	if w := t.Window; verbose && w != nil {
		b = fmt.Appendf(b, "win=[%d:%d] maxwin=%d wscale=%d ", w.End, w.MaxEnd, w.MaxWin, w.WScale)
		if w.Liberal {
			b = append(b, "liberal "...)
		}
	}
	return b
}

// Stats are the table's counters (conntrack.Stats) with the number of live
// flows, under stable JSON names, and the table's shape: max_flows, the
// slots of its hash tables and how often they were rebuilt.
type Stats struct {
	Flows         int    `json:"flows"`
	MaxFlows      int64  `json:"max_flows"`
	Found         uint64 `json:"found"`
	New           uint64 `json:"new"`
	Invalid       uint64 `json:"invalid"`
	Ignore        uint64 `json:"ignore"`
	Related       uint64 `json:"related"`
	Insert        uint64 `json:"insert"`
	InsertFailed  uint64 `json:"insert_failed"`
	Drop          uint64 `json:"drop"`
	EarlyDrop     uint64 `json:"early_drop"`
	SearchRestart uint64 `json:"search_restart"`
	Expired       uint64 `json:"expired"`
	Removed       uint64 `json:"removed"`
	SourceLimit   uint64 `json:"source_limit"`
	HalfOpenLimit uint64 `json:"half_open_limit"`
	Slots         uint64 `json:"slots"`
	Rebuilds      uint64 `json:"rebuilds"`
	// Fragments is reassembly's view, when the gateway reports one.
	Fragments *Fragments `json:"fragments,omitempty"`
}

// Fragments are the reassembly counters: fragments seen, datagrams
// completed, what is held now and what was dropped, by reason.
type Fragments struct {
	Fragments   uint64            `json:"fragments"`   // fragments received
	Reassembled uint64            `json:"reassembled"` // datagrams completed from two or more fragments
	Atomic      uint64            `json:"atomic"`      // IPv6 atomic fragments, whole by themselves
	Held        int               `json:"held"`        // fragments held now
	Datagrams   int               `json:"datagrams"`   // incomplete datagrams held now
	Memory      int64             `json:"memory"`      // bytes held now, within [fragments] memory
	Dropped     map[string]uint64 `json:"dropped"`     // fragments dropped, by reason
}

func (f Fragments) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "fragments=%d reassembled=%d atomic=%d held=%d datagrams=%d memory=%d", f.Fragments, f.Reassembled, f.Atomic, f.Held, f.Datagrams, f.Memory)
	reasons := make([]string, 0, len(f.Dropped))
	for r := range f.Dropped {
		reasons = append(reasons, r)
	}
	slices.Sort(reasons)
	for _, r := range reasons {
		fmt.Fprintf(&b, " dropped_%s=%d", r, f.Dropped[r])
	}
	return b.String()
}

// StatsFrom converts the table's counters.
func StatsFrom(s conntrack.Stats, flows int) Stats {
	return Stats{
		Flows: flows, MaxFlows: s.MaxFlows, Found: s.Found, New: s.New, Invalid: s.Invalid,
		Ignore: s.Ignore, Related: s.Related, Insert: s.Insert, InsertFailed: s.InsertFailed,
		Drop: s.Drop, EarlyDrop: s.EarlyDrop, SearchRestart: s.SearchRestart, Expired: s.Expired,
		Removed: s.Removed, SourceLimit: s.SourceLimit, HalfOpenLimit: s.HalfOpenLimit,
		Slots: s.Slots, Rebuilds: s.Rebuilds,
	}
}

func (s Stats) String() string {
	if s.Fragments != nil {
		return s.table() + "\n" + s.Fragments.String()
	}
	return s.table()
}

func (s Stats) table() string {
	return fmt.Sprintf("flows=%d max_flows=%d found=%d new=%d invalid=%d ignore=%d related=%d insert=%d insert_failed=%d drop=%d early_drop=%d search_restart=%d expired=%d removed=%d source_limit=%d half_open_limit=%d slots=%d rebuilds=%d",
		s.Flows, s.MaxFlows, s.Found, s.New, s.Invalid, s.Ignore, s.Related, s.Insert, s.InsertFailed, s.Drop,
		s.EarlyDrop, s.SearchRestart, s.Expired, s.Removed, s.SourceLimit, s.HalfOpenLimit, s.Slots, s.Rebuilds)
}

// Rule is one rule's counters (policy.RuleCounter) under stable JSON names.
type Rule struct {
	Name    string     `json:"name"` // "default" for defaults.policy
	ID      uint32     `json:"id"`   // 0 for defaults.policy
	Flows   uint64     `json:"flows"`
	Packets uint64     `json:"packets"`
	Bytes   uint64     `json:"bytes"`
	LastHit *time.Time `json:"last_hit"` // null when the rule never decided a flow
}

// RuleFrom converts one rule's counters.
func RuleFrom(c policy.RuleCounter) Rule {
	r := Rule{Name: c.Name, ID: c.ID, Flows: c.Flows, Packets: c.Packets, Bytes: c.Bytes}
	if !c.Last.IsZero() {
		last := c.Last
		r.LastHit = &last
	}
	return r
}
