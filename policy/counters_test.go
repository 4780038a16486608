package policy

import (
	"sync"
	"testing"
)

func TestCountersAndCarryOver(t *testing.T) {
	cfg := Config{
		Defaults: Defaults{Policy: "drop"},
		Rules: []RuleConfig{
			{Name: "keep", Proto: List{"tcp"}, DstPort: List{80}, Action: "allow"},
			{Name: "gone", Proto: List{"udp"}, Action: "allow"},
		},
	}
	old := mustCompile(t, cfg)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				old.CountFlow(0)
				old.CountPacket(0, 1500)
			}
		})
	}
	wg.Wait()
	old.CountFlow(-1)
	old.CountPacket(-1, 60)
	old.CountFlow(1)
	old.CountFlow(7) // out of range: ignored
	old.CountPacket(-1, -5)

	c := old.Counters()
	if len(c) != 3 || c[0].Name != "keep" || c[1].Name != "gone" || c[2].Name != "default" || c[2].ID != 0 {
		t.Fatalf("Counters() = %+v", c)
	}
	if c[0].Flows != 400 || c[0].Packets != 400 || c[0].Bytes != 600000 || c[0].Last.IsZero() {
		t.Errorf("keep = %+v", c[0])
	}
	if c[2].Flows != 1 || c[2].Packets != 2 || c[2].Bytes != 60 {
		t.Errorf("default = %+v", c[2])
	}

	// Reload: "keep" moves to index 1, "gone" is removed, "new" appears.
	cfg.Rules = []RuleConfig{
		{Name: "new", Proto: List{"udp"}, Action: "drop"},
		{Name: "keep", Proto: List{"tcp"}, DstPort: List{80, 8080}, Action: "allow"},
	}
	p := mustCompile(t, cfg)
	p.CarryCountersFrom(old)
	p.CountFlow(1)
	c = p.Counters()
	if c[0].Name != "new" || c[0].Flows != 0 {
		t.Errorf("new = %+v", c[0])
	}
	if c[1].Name != "keep" || c[1].Flows != 401 || c[1].Bytes != 600000 {
		t.Errorf("keep after reload = %+v", c[1])
	}
	if c[2].Flows != 1 {
		t.Errorf("default after reload = %+v", c[2])
	}
	// Flows still counted against the old policy show in the new totals.
	old.CountPacket(0, 100)
	if got := p.Counters()[1].Bytes; got != 600100 {
		t.Errorf("shared counter bytes = %d", got)
	}
}

func TestRuleIDsStableAcrossReloads(t *testing.T) {
	a := mustCompile(t, Config{Defaults: Defaults{Policy: "drop"}, Rules: []RuleConfig{
		{Name: "id-x", Action: "allow"}, {Name: "id-y", Action: "allow"}}})
	b := mustCompile(t, Config{Defaults: Defaults{Policy: "drop"}, Rules: []RuleConfig{
		{Name: "id-z", Action: "allow"}, {Name: "id-y", Action: "allow"}, {Name: "id-x", Action: "allow"}}})
	ca, cb := a.Counters(), b.Counters()
	if ca[0].ID == 0 || ca[0].ID == ca[1].ID {
		t.Fatalf("IDs %d %d", ca[0].ID, ca[1].ID)
	}
	if cb[2].ID != ca[0].ID || cb[1].ID != ca[1].ID || cb[0].ID == ca[0].ID || cb[0].ID == ca[1].ID {
		t.Fatalf("IDs not stable: a=%+v b=%+v", ca, cb)
	}
	for _, c := range cb[:3] {
		if a.RuleName(c.ID) != c.Name || b.RuleName(c.ID) != c.Name {
			t.Errorf("RuleName(%d) = %q, want %q", c.ID, a.RuleName(c.ID), c.Name)
		}
	}
	if b.RuleName(1<<31) != "" {
		t.Error("unknown ID has a name")
	}
	if v := b.Decide(flow("tcp", "198.18.0.1:1", "198.18.0.2:2")); v.Rule != 0 || v.RuleID != cb[0].ID || b.RuleNameAt(v.Rule) != "id-z" {
		t.Errorf("verdict %v id %d", v, v.RuleID)
	}
}

func TestCountPacketByID(t *testing.T) {
	cfg := Config{
		Defaults: Defaults{Policy: "drop"},
		Rules: []RuleConfig{
			{Name: "byid-a", Proto: List{"tcp"}, DstPort: List{80}, Action: "allow"},
			{Name: "byid-b", Proto: List{"udp"}, Action: "allow"},
		},
	}
	old := mustCompile(t, cfg)
	idA := old.Decide(flow("tcp", "198.18.1.2:1000", "198.18.2.1:80")).RuleID
	idB := old.Decide(flow("udp", "198.18.1.2:1000", "198.18.2.1:53")).RuleID
	if idA == 0 || idB == 0 || idA == idB {
		t.Fatalf("rule IDs %d, %d", idA, idB)
	}
	old.CountPacketByID(idA, 100)
	old.CountPacketByID(idB, 10)
	old.CountPacketByID(0, 1)
	old.CountPacketByID(1<<30, 1000) // unknown: ignored
	c := old.Counters()
	if c[0].Packets != 1 || c[0].Bytes != 100 || c[1].Packets != 1 || c[1].Bytes != 10 || c[2].Packets != 1 || c[2].Bytes != 1 {
		t.Fatalf("Counters() = %+v", c)
	}

	// After a reload that reorders and drops rules, an established flow's
	// ID still finds the carried counter; a removed rule's ID counts nowhere.
	cfg.Rules = []RuleConfig{
		{Name: "byid-new", Proto: List{"icmp"}, Action: "allow"},
		{Name: "byid-a", Proto: List{"tcp"}, DstPort: List{80}, Action: "allow"},
	}
	p := mustCompile(t, cfg)
	p.CarryCountersFrom(old)
	p.CountPacketByID(idA, 50)
	p.CountPacketByID(idB, 7)
	c = p.Counters()
	if c[1].Name != "byid-a" || c[1].Packets != 2 || c[1].Bytes != 150 || c[0].Packets != 0 {
		t.Fatalf("after reload Counters() = %+v", c)
	}
	if n := testing.AllocsPerRun(100, func() { p.CountPacketByID(idA, 1) }); n != 0 {
		t.Errorf("CountPacketByID allocates %.1f times", n)
	}
}
