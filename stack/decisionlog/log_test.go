package decisionlog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// testLogger logs to out without the time attribute, so lines compare
// byte for byte.
func testLogger(out *bytes.Buffer, text bool) *slog.Logger {
	opts := &slog.HandlerOptions{ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}
	if text {
		return slog.New(slog.NewTextHandler(out, opts))
	}
	return slog.New(slog.NewJSONHandler(out, opts))
}

func lines(out *bytes.Buffer) []string {
	s := strings.TrimSpace(out.String())
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

var (
	src4 = netip.MustParseAddrPort("198.18.1.2:5000")
	dst6 = netip.MustParseAddrPort("[2001:2:0:2::1]:53")
)

// TestWriteFormat pins the line format: end-to-end tests and operators'
// tools parse it, so it must not change by a byte.
func TestWriteFormat(t *testing.T) {
	for _, tc := range []struct {
		name string
		rec  Record
		text bool
		want string
	}{
		{
			name: "rule",
			rec:  Record{Rule: "r", Action: "drop", Proto: 17, Src: src4, Dst: dst6, Reason: ReasonRule},
			want: `{"level":"INFO","msg":"decision","rule":"r","action":"drop","proto":"udp","src":"198.18.1.2:5000","dst":"[2001:2:0:2::1]:53","reason":"rule"}`,
		},
		{
			name: "payload pattern",
			rec:  Record{Rule: "no-evil", Action: "reject", Proto: 6, Src: src4, Dst: netip.MustParseAddrPort("198.18.2.1:80"), Reason: ReasonPayload, Pattern: "EVIL"},
			want: `{"level":"INFO","msg":"decision","rule":"no-evil","action":"reject","proto":"tcp","src":"198.18.1.2:5000","dst":"198.18.2.1:80","reason":"payload","pattern":"EVIL"}`,
		},
		{
			name: "l7 field",
			rec:  Record{Rule: "sni", Action: "allow", Proto: 6, Src: src4, Dst: netip.MustParseAddrPort("198.18.2.1:443"), Reason: ReasonL7, Field: "sni", Value: "example.com"},
			want: `{"level":"INFO","msg":"decision","rule":"sni","action":"allow","proto":"tcp","src":"198.18.1.2:5000","dst":"198.18.2.1:443","reason":"l7","sni":"example.com"}`,
		},
		{
			name: "pattern and field",
			rec:  Record{Rule: "x", Action: "drop", Proto: 6, Src: src4, Dst: dst6, Reason: ReasonHTTPRequest, Pattern: "p", Field: "http_path", Value: "/admin"},
			want: `{"level":"INFO","msg":"decision","rule":"x","action":"drop","proto":"tcp","src":"198.18.1.2:5000","dst":"[2001:2:0:2::1]:53","reason":"http_request","pattern":"p","http_path":"/admin"}`,
		},
		{
			name: "other proto",
			rec:  Record{Rule: "default", Action: "drop", Proto: 47, Src: netip.AddrPortFrom(src4.Addr(), 0), Dst: netip.AddrPortFrom(dst6.Addr(), 0), Reason: ReasonDefault},
			want: `{"level":"INFO","msg":"decision","rule":"default","action":"drop","proto":"gre","src":"198.18.1.2:0","dst":"[2001:2:0:2::1]:0","reason":"default"}`,
		},
		{
			name: "text handler",
			rec:  Record{Rule: "allow-dns", Action: "allow", Proto: 17, Src: src4, Dst: dst6, Reason: ReasonDNS, Field: "dns_qname", Value: "a.example"},
			text: true,
			want: `level=INFO msg=decision rule=allow-dns action=allow proto=udp src=198.18.1.2:5000 dst=[2001:2:0:2::1]:53 reason=dns dns_qname=a.example`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			New(testLogger(&out, tc.text), nil).Write(&tc.rec)
			if got := strings.TrimSuffix(out.String(), "\n"); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestWriteRateLimit(t *testing.T) {
	var out bytes.Buffer
	now := time.Unix(1000, 0)
	l := New(testLogger(&out, false), func() time.Time { return now })
	l.SetRate(2, 2)
	rec := &Record{Rule: "r", Action: "drop", Proto: 17, Src: src4, Dst: dst6, Reason: ReasonRule}
	for _, step := range []struct {
		name           string
		advance        time.Duration
		writes         int
		wantLines      int // in all, so far
		wantSuppressed uint64
	}{
		{"a burst of 5 at 2/s, burst 2", 0, 5, 2, 3},
		{"one second later, 5 more", time.Second, 5, 4, 6},
		{"half a second later, 1 more", time.Second / 2, 1, 5, 6},
	} {
		now = now.Add(step.advance)
		for range step.writes {
			l.Write(rec)
		}
		if got := len(lines(&out)); got != step.wantLines {
			t.Errorf("%s: got %d lines; want %d", step.name, got, step.wantLines)
		}
		if got := l.Suppressed(); got != step.wantSuppressed {
			t.Errorf("%s: got %d suppressed; want %d", step.name, got, step.wantSuppressed)
		}
	}
}

func TestWriteUnlimited(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  bool // whether SetRate(rate, 1) is called at all
		rate float64
	}{
		{"never set", false, 0},
		{"rate 0", true, 0},
		{"negative rate", true, -5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			stopped := time.Unix(1000, 0)
			l := New(testLogger(&out, false), func() time.Time { return stopped })
			if tc.set {
				l.SetRate(tc.rate, 1)
			}
			for range 100 {
				l.Write(&Record{Rule: "r"})
			}
			if got := len(lines(&out)); got != 100 || l.Suppressed() != 0 {
				t.Errorf("got %d lines, %d suppressed; want 100, 0", got, l.Suppressed())
			}
		})
	}
}

func TestWriteNilLogger(t *testing.T) {
	l := New(nil, nil)
	l.SetRate(1, 1)
	for range 10 {
		l.Write(&Record{Rule: "r"})
	}
	l.FlushSuppressed() // must not panic
	if got := l.Suppressed(); got != 0 {
		t.Errorf("got %d suppressed; want 0, a nil logger spends no budget", got)
	}
}

func TestFlushSuppressed(t *testing.T) {
	var out bytes.Buffer
	stopped := time.Unix(1000, 0)
	l := New(testLogger(&out, false), func() time.Time { return stopped })
	l.SetRate(1, 2) // a stopped clock: two lines, then nothing
	for _, rule := range []string{"noisy", "noisy", "noisy", "default", "noisy", "default", "a-rule"} {
		l.Write(&Record{Rule: rule, Action: "drop", Reason: ReasonRule})
	}
	out.Reset()
	l.FlushSuppressed()
	want := []string{
		`{"level":"WARN","msg":"decisions suppressed","rule":"a-rule","count":1}`,
		`{"level":"WARN","msg":"decisions suppressed","rule":"default","count":2}`,
		`{"level":"WARN","msg":"decisions suppressed","rule":"noisy","count":2}`,
	}
	if got := lines(&out); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("summary:\ngot  %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
	if got := l.Suppressed(); got != 5 {
		t.Errorf("Suppressed: got %d; want 5, summaries do not reset it", got)
	}
	out.Reset()
	l.FlushSuppressed()
	if got := lines(&out); len(got) != 0 {
		t.Errorf("a second summary without new suppressions: got %q; want no lines", got)
	}
}

// TestFlushSuppressedBoundsRules: past maxSuppressedRules distinct rules,
// new names are no longer tracked, but every refused line still counts.
func TestFlushSuppressedBoundsRules(t *testing.T) {
	var out bytes.Buffer
	stopped := time.Unix(1000, 0)
	l := New(testLogger(&out, false), func() time.Time { return stopped })
	l.SetRate(1, 1)
	l.Write(&Record{Rule: "admitted"})
	n := maxSuppressedRules + 10
	for i := range n {
		l.Write(&Record{Rule: fmt.Sprintf("rule-%05d", i)})
	}
	l.Write(&Record{Rule: "rule-00000"}) // tracked already: still counted
	out.Reset()
	l.FlushSuppressed()
	got := lines(&out)
	if len(got) != maxSuppressedRules {
		t.Fatalf("summary lines: got %d; want %d", len(got), maxSuppressedRules)
	}
	var first struct {
		Rule  string
		Count uint64
	}
	if err := json.Unmarshal([]byte(got[0]), &first); err != nil {
		t.Fatal(err)
	}
	if first.Rule != "rule-00000" || first.Count != 2 {
		t.Errorf("first summary: got %s %d; want rule-00000 2", first.Rule, first.Count)
	}
	if got, want := l.Suppressed(), uint64(n+1); got != want {
		t.Errorf("Suppressed: got %d; want %d", got, want)
	}
}

// TestWriteRefusedAllocs guards the flood path: a line the budget refuses
// must cost no allocation, since a flood of new flows produces exactly
// those.
func TestWriteRefusedAllocs(t *testing.T) {
	var out bytes.Buffer
	stopped := time.Unix(1000, 0)
	l := New(testLogger(&out, false), func() time.Time { return stopped })
	l.SetRate(1, 1)
	rec := &Record{Rule: "flood", Action: "drop", Proto: 6, Src: src4, Dst: dst6, Reason: ReasonDefault}
	l.Write(rec) // spends the one token
	l.Write(rec) // the rule's count exists from now on
	if a := testing.AllocsPerRun(1000, func() { l.Write(rec) }); a != 0 {
		t.Errorf("allocations per refused line: got %v; want 0", a)
	}
	if got := len(lines(&out)); got != 1 {
		t.Errorf("lines: got %d; want 1", got)
	}
}

func BenchmarkWriteRefused(b *testing.B) {
	stopped := time.Unix(1000, 0)
	l := New(slog.New(slog.DiscardHandler), func() time.Time { return stopped })
	l.SetRate(1, 1)
	rec := &Record{Rule: "flood", Action: "drop", Proto: 6, Src: src4, Dst: dst6, Reason: ReasonDefault}
	b.ReportAllocs()
	for b.Loop() {
		l.Write(rec)
	}
}

func BenchmarkWriteAdmitted(b *testing.B) {
	var out bytes.Buffer
	l := New(testLogger(&out, false), nil)
	rec := &Record{Rule: "allow-web", Action: "allow", Proto: 6, Src: src4, Dst: dst6, Reason: ReasonRule}
	b.ReportAllocs()
	for b.Loop() {
		out.Reset()
		l.Write(rec)
	}
}
