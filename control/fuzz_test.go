package control

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
)

// FuzzReadRequest feeds arbitrary bytes to the request parser: it must
// never panic, accept only version-1 requests that fit the limit, and
// refuse oversize input by name.
func FuzzReadRequest(f *testing.F) {
	f.Add([]byte(`{"v":1,"op":"ping"}`))
	f.Add([]byte(`{"v":1,"op":"conntrack.delete","args":{"proto":"tcp","src":"198.18.1.2:1","dst":"198.18.2.2:80"}}`))
	f.Add([]byte(`{"v":2,"op":"ping"}`))
	f.Add([]byte(`{"v":3,"op":"ping"}`))
	f.Add([]byte(`{"v":1,"op":` + strings.Repeat(" ", 300) + `"x"}`))
	const max = 256
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := readRequest(bytes.NewReader(b), max)
		if err != nil {
			if req != nil {
				t.Fatal("request and error both returned")
			}
			if len(b) <= max && strings.Contains(err.Error(), "larger than") {
				t.Fatalf("%d-byte input refused as oversize", len(b))
			}
			return
		}
		if req.V < MinVersion || req.V > Version {
			t.Fatalf("accepted version %d", req.V)
		}
	})
}

// FuzzDeleteArgs checks that every tuple Key accepts describes itself: the
// key's fields are what the strings said, in one address family.
func FuzzDeleteArgs(f *testing.F) {
	f.Add("tcp", "198.18.1.2:41234", "198.18.2.2:80")
	f.Add("udp", "[2001:2:0:1::2]:5353", "[2001:2:0:2::2]:53")
	f.Add("icmp", "198.18.1.2:77", "198.18.2.2")
	f.Add("icmpv6", "[::ffff:1.2.3.4]:1", "::1")
	f.Add("tcp", "[fe80::1%lo]:1", "[fe80::2]:2")
	f.Fuzz(func(t *testing.T, proto, src, dst string) {
		k, err := DeleteArgs{Proto: proto, Src: src, Dst: dst}.Key()
		if err != nil {
			return
		}
		if k.Family != 4 && k.Family != 6 {
			t.Fatalf("family %d", k.Family)
		}
		s, d := k.SrcAddr(), k.DstAddr()
		if k.Family == 4 && ([12]byte(k.Src[4:]) != [12]byte{} || [12]byte(k.Dst[4:]) != [12]byte{}) {
			t.Fatalf("IPv4 key with bytes past the address: %+v", k)
		}
		want := func(in string, got netip.Addr, port uint16) {
			ap, err := netip.ParseAddrPort(in)
			if err != nil {
				a, aerr := netip.ParseAddr(in)
				if aerr != nil {
					t.Fatalf("accepted %q", in)
				}
				ap = netip.AddrPortFrom(a, 0)
			}
			if ap.Addr().Unmap() != got || ap.Port() != port {
				t.Fatalf("%q became %s port %d", in, got, port)
			}
		}
		want(src, s, k.SrcPort)
		want(dst, d, k.DstPort)
	})
}

// FuzzFlowFilter: any filter arguments either fail with an error naming a
// field or compile to a matcher that never panics on a flow, and an
// address filter selects the flow whose source it names.
func FuzzFlowFilter(f *testing.F) {
	f.Add([]byte(`{"proto":"tcp","src":"198.18.1.0/24","dst":"198.18.2.2:80","state":"established","rule":"web"}`))
	f.Add([]byte(`{"src":"[2001:2::1]:53"}`))
	f.Add([]byte(`{"dst":"::ffff:198.18.2.2"}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"src":"fe80::1%eth0/64"}`))
	flow := Flow{Proto: "tcp", ProtoNum: 6, State: "ESTABLISHED", Rule: "web",
		Orig: Tuple{Src: netip.MustParseAddr("198.18.1.2"), Dst: netip.MustParseAddr("198.18.2.2"), SrcPort: 40000, DstPort: 80}}
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := decodeFilter(raw)
		if err != nil {
			return
		}
		_ = m.matches(&flow)
		var ff FlowFilter
		if json.Unmarshal(raw, &ff) == nil && ff.Src != "" && ff.Proto == "" && ff.Dst == "" && ff.State == "" && ff.Rule == "" {
			if a, err := netip.ParseAddr(ff.Src); err == nil && a.Unmap() == flow.Orig.Src && !m.matches(&flow) {
				t.Fatalf("src %q does not select a flow from %s", ff.Src, flow.Orig.Src)
			}
		}
	})
}
