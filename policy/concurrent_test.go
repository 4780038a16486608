package policy

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tungate/tungate/internal/units"
)

// Decide, ApplyAddTo and the control-socket set calls run concurrently in
// the gateway; under -race this checks their locking.
func TestConcurrentSetsAndLimits(t *testing.T) {
	p := mustCompile(t, Config{
		Defaults: Defaults{Policy: "allow"},
		Sets:     map[string]SetConfig{"ban": {Type: "cidr", Dynamic: true, Timeout: units.Duration(time.Minute), MaxElements: 100}},
		Rules: []RuleConfig{
			{Name: "ban", Src: List{"@ban"}, Action: "drop"},
			{Name: "lim", Proto: List{"tcp"}, Limit: &LimitConfig{Rate: "5/s"}, AddTo: &AddToConfig{Set: "ban"}, Action: "drop"},
		},
	})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				f := flow("tcp", fmt.Sprintf("198.18.%d.%d:1", g, i%50), "198.18.100.1:80")
				v := p.Decide(f)
				p.ApplyAddTo(&v)
				p.CountVerdict(&v)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 200 {
			a := fmt.Sprintf("198.18.50.%d", i%100)
			_ = p.SetAdd("ban", a, 0)
			_ = p.SetDel("ban", a)
			_, _ = p.SetList("ban")
		}
	}()
	wg.Wait()
	l, err := p.SetList("ban")
	if err != nil || len(l) == 0 || len(l) > 100 {
		t.Errorf("ban set after the run: %d elements, %v", len(l), err)
	}
}
