package test

import (
	"context"
	"time"

	"github.com/tungate/tungate/internal/lab"
)

// findDecision returns the first decision line (already written, or
// written within wait) carrying every key/value of want.
func findDecision(gw *lab.Gateway, want map[string]string, wait time.Duration) (map[string]any, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var rec map[string]any
	_, err := gw.WaitFor(ctx, func(line string) bool {
		r, ok := lab.ParseLog(line)
		if !ok || r["msg"] != "decision" {
			return false
		}
		for k, v := range want {
			if s, _ := r[k].(string); s != v {
				return false
			}
		}
		rec = r
		return true
	})
	return rec, err == nil
}
