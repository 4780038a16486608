package policy

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// linearDecide is the reference Decide: every rule in file order, no index.
func linearDecide(p *Policy, f *Flow) (rule int, armed bool) {
	var in matchIn
	p.prepare(f, &in)
	for i := range p.rules {
		r := &p.rules[i]
		if r.protos&(1<<protoClass(f.Proto)) == 0 || !r.matchL34(&in) || r.isLog {
			continue
		}
		if r.payload != nil {
			armed = true
			continue
		}
		return i, armed
	}
	return -1, armed
}

func TestDecideIndexMatchesLinear(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	protos := []string{"tcp", "udp", "icmp", "any"}
	for round := range 20 {
		cfg := Config{
			Defaults: Defaults{Policy: "allow"},
			Sets:     map[string]SetConfig{"ps": {Type: "port", Elements: List{int64(5), "7-9", int64(5)}}},
		}
		for i := range 60 {
			rc := RuleConfig{Name: fmt.Sprintf("r%d", i), Action: "drop"}
			proto := protos[rng.IntN(len(protos))]
			if proto != "any" || rng.IntN(2) == 0 {
				rc.Proto = List{proto}
			}
			if proto == "tcp" || proto == "udp" {
				switch rng.IntN(5) {
				case 0: // wild: wide range
					rc.DstPort = List{fmt.Sprintf("%d-%d", rng.IntN(10), 10+rng.IntN(100))}
				case 1, 2: // filed, sometimes a port listed twice
					p := int64(rng.IntN(12))
					rc.DstPort = List{p, p, int64(rng.IntN(12))}
				case 3:
					rc.DstPort = List{"@ps"}
				}
				if rng.IntN(4) == 0 {
					rc.NotDstPort = List{int64(rng.IntN(12))}
				}
			}
			if rng.IntN(3) == 0 {
				rc.Dst = List{fmt.Sprintf("198.18.0.%d/31", rng.IntN(8)*2)}
			}
			if rng.IntN(8) == 0 {
				rc.Payload = []PayloadConfig{{Contains: "x"}}
			}
			if rng.IntN(10) == 0 {
				rc.Action = "log"
				rc.Payload = nil
			}
			cfg.Rules = append(cfg.Rules, rc)
		}
		p := mustCompile(t, cfg)
		for range 300 {
			f := &Flow{
				Proto:   []uint8{6, 17, 1}[rng.IntN(3)],
				Src:     netip.MustParseAddr("198.18.1.1"),
				Dst:     netip.AddrFrom4([4]byte{198, 18, 0, byte(rng.IntN(20))}),
				SrcPort: 1000,
				DstPort: uint16(rng.IntN(14)),
			}
			if f.Proto == 1 {
				f.DstPort = 0
			}
			v := p.Decide(f)
			rule, armed := linearDecide(p, f)
			if v.Rule != rule || v.Armed != (armed && v.Action == ActionAllow) {
				t.Fatalf("round %d flow %+v: Decide %v, linear rule %d armed %v", round, f, v, rule, armed)
			}
		}
	}
}
