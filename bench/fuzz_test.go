package bench

import (
	"math"
	"testing"
)

func FuzzParseIperf(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseIperf(data)
		if err != nil {
			return
		}
		if r.Lost > r.Packets || r.Lost < 0 || r.Seconds < 0 || r.BitsPerSecond < 0 {
			t.Fatalf("inconsistent result accepted: %+v", r)
		}
		if pps := r.DeliveredPPS(); pps < 0 || math.IsNaN(pps) {
			t.Fatalf("pps %v from %+v", pps, r)
		}
	})
}

func FuzzParseProcStat(f *testing.F) {
	f.Fuzz(func(t *testing.T, line []byte) {
		s, err := ParseProcStat(line)
		if err == nil && s.CPU < 0 {
			t.Fatalf("negative CPU: %+v", s)
		}
	})
}

func FuzzParseStatus(f *testing.F) {
	f.Fuzz(func(t *testing.T, text []byte) {
		m, err := ParseStatus(text)
		if err == nil && (m.RSS < 0 || m.HWM < 0) {
			t.Fatalf("negative memory: %+v", m)
		}
	})
}

func FuzzParseHostBusy(f *testing.F) {
	f.Fuzz(func(t *testing.T, text []byte) {
		b, err := ParseHostBusy(text)
		if err == nil && (b < 0 || math.IsNaN(b)) {
			t.Fatalf("busy %v", b)
		}
	})
}
