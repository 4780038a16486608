package policy

import (
	"fmt"
	"net/netip"
	"testing"
)

// benchConfig has n rules over a 100k-prefix set (50k IPv4 /32s in
// 198.18.0.0/15, 50k IPv6 /64s in 2001:2::/48): tcp and udp rules with
// dst_port spread over 1000-2999 (five rules share each port, as service
// rules do), each with src and dst in the set (every tenth src only) and
// every seventh with a not_src_port. The benchmark flow comes from outside
// the set to a set member on port 1443, so it is checked against the
// other rules of its port (two binary searches each) before the last rule
// decides it.
func benchConfig(n int) Config {
	elems := make(List, 0, 100_000)
	for i := range 50_000 {
		a := netip.AddrFrom4([4]byte{198, 18 + byte(i>>15), byte(i >> 7), byte(i<<1) & 0xff})
		elems = append(elems, a.String())
		elems = append(elems, fmt.Sprintf("2001:2:0:%x::/64", i))
	}
	cfg := Config{
		Defaults: Defaults{Policy: "drop"},
		Sets:     map[string]SetConfig{"big": {Type: "cidr", Elements: elems}},
	}
	for i := range n - 1 {
		rc := RuleConfig{Name: fmt.Sprintf("r%d", i), Proto: List{"tcp"}, Src: List{"@big"}, Dst: List{"@big"}, DstPort: List{int64(1000 + i%2000)}, Action: "drop"}
		if i%3 == 0 {
			rc.Proto = List{"udp"}
		}
		if i%10 == 0 {
			rc.Dst = nil
		}
		if i%7 == 0 {
			rc.NotSrcPort = List{int64(i % 1024)}
		}
		cfg.Rules = append(cfg.Rules, rc)
	}
	cfg.Rules = append(cfg.Rules, RuleConfig{Name: "hit", Proto: List{"tcp"}, Dst: List{"@big"}, DstPort: List{int64(1443)}, Action: "allow"})
	return cfg
}

func BenchmarkDecide(b *testing.B) {
	for _, n := range []int{1, 10000} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			p := mustCompile(b, benchConfig(n))
			f := flow("tcp", "198.18.0.1:40000", "198.18.100.8:1443")
			if v := p.Decide(f); v.Rule != n-1 {
				b.Fatalf("bench flow decided by %v, want rule %d", v, n-1)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				p.Decide(f)
			}
		})
	}
}

func BenchmarkCompile(b *testing.B) {
	b.Run("rules=10000", func(b *testing.B) {
		cfg := benchConfig(10000)
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			if _, err := Compile(cfg); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkFeed(b *testing.B) {
	p := payloadPolicy(b, 0,
		RuleConfig{Name: "bj", Proto: List{"tcp"}, Payload: []PayloadConfig{{Contains: "${jndi:", NoCase: true}}, Action: "reject"},
		RuleConfig{Name: "bs", Proto: List{"tcp"}, Payload: []PayloadConfig{{Contains: "/etc/passwd"}}, Action: "drop"},
	)
	in := p.NewInspector(tcpFlow, p.Decide(tcpFlow))
	data := make([]byte, 16<<10)
	for i := range data {
		data[i] = "GET /index.html HTTP/1.1\r\nHost: a\r\n"[i%35]
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := in.Feed(ToServer, data); ok {
			b.Fatal("unexpected hit")
		}
	}
}

// BenchmarkDecideWild is the case the dst_port index cannot help: every
// rule's dst_port is a wide range, so Decide walks all of them.
func BenchmarkDecideWild(b *testing.B) {
	b.Run("rules=10000", func(b *testing.B) {
		cfg := benchConfig(10000)
		for i := range cfg.Rules[:len(cfg.Rules)-1] {
			cfg.Rules[i].DstPort = List{"1000-1999"}
		}
		p := mustCompile(b, cfg)
		f := flow("tcp", "198.18.0.1:40000", "198.18.100.8:1443")
		b.ReportAllocs()
		for b.Loop() {
			p.Decide(f)
		}
	})
}
