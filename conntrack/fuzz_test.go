package conntrack

import (
	"testing"
	"time"
)

var fuzzSrcs = []string{"198.18.0.1", "198.18.0.2", "2001:2::1", "2001:2::2"}
var fuzzDsts = []string{"198.18.1.1", "2001:2:0:1::1"}

// fuzzKey decodes a small key space from one byte so that operations in a
// sequence keep hitting the same flows: bits 0-1 protocol (TCP, UDP, ICMP,
// GRE), 2-3 source, 4 source port, 5 destination port, 6 reversed, 7 a
// non-zero ICMP DstPort.
func fuzzKey(b byte) Key {
	src := fuzzSrcs[b>>2&3]
	dst := fuzzDsts[0]
	if src[0] == '2' {
		dst = fuzzDsts[1]
	}
	sport, dport := uint16(1000+int(b>>4&1)), uint16(80+int(b>>5&1))
	var k Key
	switch b & 3 {
	case 0:
		k = tcpKey(src, dst, sport, dport)
	case 1:
		k = udpKey(src, dst, sport, dport)
	case 2:
		k = echoKey(src, dst, sport)
	default:
		k = mkKey(47, src, dst, 0, 0)
	}
	if b>>6&1 == 1 {
		k = replyKey(&k)
	}
	if b>>7 == 1 && isICMP(k.Proto) {
		k.DstPort = 7 // breaks the Key convention; must be refused, not corrupt the index
	}
	return k
}

// FuzzTrack plays arbitrary operation sequences against a small table and
// checks the table's structure, limits and counters after every step.
// Each operation is 4 bytes: op, key, TCP flags or ICMP type, argument.
func FuzzTrack(f *testing.F) {
	f.Add([]byte{0, 0, fSYN, 0, 1, 0, fSYN, 0, 0, 0x40, fSYNACK, 0, 0, 0, fACK, 0})
	f.Add([]byte{1, 1, 0, 0, 0, 0x41, 0, 0, 5, 0, 0, 3, 0, 1, 0, 0})
	f.Add([]byte{1, 2, 8, 0, 0, 0x42, 0, 0, 7, 0x42, 3, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		loose := len(data)%4 == 1 // a trailing byte picks loose mode
		tab, clk := newTestTable(t, func(c *Config) {
			c.MaxFlows = 5
			c.MaxFlowsPerSource = 3
			c.MaxHalfOpenPerSource = 2
			c.MaxHalfOpen = 0.6
			c.Loose = loose
		})
		sub := tab.Subscribe(3, EventAll)
		defer sub.Close()
		var found uint64
		track := func(p *Packet) Result {
			r := tab.Track(p)
			if r.Found {
				found++
				if r.State != StateEstablished && r.State != StateInvalid {
					t.Fatalf("found with state %v", r.State)
				}
			} else if r.State != StateNew && r.State != StateInvalid {
				t.Fatalf("not found with state %v", r.State)
			}
			return r
		}
		for i := 0; i+4 <= len(data) && i < 4*256; i += 4 {
			op, kb, fl, arg := data[i], data[i+1], data[i+2], data[i+3]
			k := fuzzKey(kb)
			p := &Packet{Key: k, TCPFlags: fl, ICMPType: fl, Len: int(arg), PayloadLen: int(arg) / 2,
				Seq: uint32(arg) * 4099, Ack: uint32(fl) * 4099, Window: uint16(arg) << (arg % 9),
				TCPOpts: arg&1 == 1, WScale: int8(arg%17) - 1, SACKPerm: arg&2 != 0}
			if arg&4 != 0 {
				p.SACKEdge = p.Ack + uint32(arg)*64
			}
			switch op % 12 {
			case 0:
				track(p)
			case 1:
				if r := track(p); r.State == StateNew {
					err := tab.Commit(p, Verdict{Action: arg})
					if err != nil && err != ErrTableFull && err != ErrSourceLimit && err != ErrHalfOpenLimit {
						t.Fatalf("Commit after new: %v", err)
					}
				}
			case 2:
				err := tab.Commit(p, Verdict{Action: arg})
				if err == ErrNotNew && tab.canOpen(p) {
					t.Fatalf("ErrNotNew for an opening packet %+v", p)
				}
				if err != nil && err != ErrNotNew && err != ErrTableFull && err != ErrSourceLimit && err != ErrHalfOpenLimit {
					t.Fatalf("Commit: %v", err)
				}
			case 3:
				clk.Advance(time.Duration(arg) * time.Second * time.Duration(1+int(fl)%64))
			case 4:
				tab.Delete(k)
			case 5:
				tab.sweepAll()
			case 6:
				tab.SetVerdict(k, Verdict{Rule: uint32(arg)})
			case 7:
				inner := fuzzKey(arg)
				outer := &Packet{Key: mkKey(protoICMP, "198.18.2.1", "198.18.0.1", 0, 0), ICMPType: fl}
				if kb&1 == 1 {
					outer.Key.Dst = inner.Src
					outer.Key.Family = inner.Family
				}
				r := tab.TrackICMPError(outer, inner)
				if r.State != StateRelated && r.State != StateInvalid {
					t.Fatalf("ICMP error result %+v", r)
				}
				if r.State == StateRelated && (outer.Key.Dst != inner.Src || !icmpIsError(outer)) {
					t.Fatalf("related without matching outer dst: %+v", r)
				}
			case 8:
				tab.Range(func(fi FlowInfo) bool {
					if fi.Packets[DirOriginal] == 0 || (fi.SeenReply && fi.Packets[DirReply] == 0) {
						t.Fatalf("flow counters %+v", fi)
					}
					if (fi.Proto == protoTCP) != (fi.TCPState != "") || fi.Timeout <= 0 {
						t.Fatalf("flow %+v", fi)
					}
					return true
				})
			case 10:
				inner := fuzzKey(arg)
				outer := &Packet{Key: mkKey(protoICMP, "198.18.2.1", "198.18.0.1", 0, 0), ICMPType: fl % 13}
				if inner.Family == 6 {
					outer.Key = mkKey(protoICMPv6, "2001:2::9", "2001:2::1", 0, 0)
					outer.ICMPType = fl % 5
				}
				outer.Key.Dst = inner.Src
				q := &Quote{Key: inner, L4Len: int(kb % 12), Seq: uint32(kb) * 4099, ICMPType: kb}
				r := tab.TrackICMPErrorQuote(outer, q)
				if r.State != StateRelated && r.State != StateInvalid {
					t.Fatalf("ICMP error result %+v", r)
				}
				if r.State == StateRelated && (q.L4Len < 8 || !icmpIsError(outer)) {
					t.Fatalf("related with a bad quote: %+v", q)
				}
			case 11:
				for len(sub.C()) > 0 {
					ev := <-sub.C()
					if ev.Type != EventNew && ev.Type != EventUpdate && ev.Type != EventDestroy {
						t.Fatalf("event type %v", ev.Type)
					}
				}
			case 9:
				if r := track(p); r.Found && r.State == StateEstablished {
					e, dir, ok := flow(tab, k)
					if ok && dir != r.Dir {
						t.Fatalf("dir %v, index says %v", r.Dir, dir)
					}
					_ = e
				}
			}
			if n := tab.Len(); n > 5 {
				t.Fatalf("Len %d exceeds max_flows", n)
			}
			if n := tab.HalfOpen(); n > 3 {
				t.Fatalf("HalfOpen %d exceeds its share", n)
			}
			checkInvariants(t, tab)
		}
		if st := tab.Stats(); st.Found != found {
			t.Fatalf("stats found %d, observed %d", st.Found, found)
		}
	})
}
