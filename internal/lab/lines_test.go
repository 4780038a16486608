package lab

import (
	"context"
	"slices"
	"testing"
	"time"
)

func TestLineWriterSplitsAcrossWrites(t *testing.T) {
	g := &Gateway{changed: make(chan struct{}), exited: make(chan struct{})}
	w := (*lineWriter)(g)
	for _, chunk := range []string{"{\"msg\":", "\"a\"}\n{\"msg\":\"b\"}\nplain", " text\n", "tail"} {
		w.Write([]byte(chunk))
	}
	want := []string{`{"msg":"a"}`, `{"msg":"b"}`, "plain text"}
	if got := g.Logs(); !slices.Equal(got, want) {
		t.Fatalf("Logs() = %q, want %q", got, want)
	}
	g.flushPartial()
	if got := g.Logs(); len(got) != 4 || got[3] != "tail" {
		t.Fatalf("after flush Logs() = %q, want trailing \"tail\"", got)
	}
}

func TestWaitForLaterLine(t *testing.T) {
	g := &Gateway{changed: make(chan struct{}), exited: make(chan struct{})}
	w := (*lineWriter)(g)
	w.Write([]byte(`{"msg":"starting"}` + "\n"))
	done := make(chan string, 1)
	go func() {
		line, _ := g.WaitFor(context.Background(), MsgIs("ready"))
		done <- line
	}()
	w.Write([]byte(`{"msg":"ready","x":1}` + "\n"))
	select {
	case line := <-done:
		if line != `{"msg":"ready","x":1}` {
			t.Errorf("WaitFor = %q", line)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WaitFor did not see the ready line")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := g.WaitFor(ctx, MsgIs("absent")); err != context.Canceled {
		t.Errorf("WaitFor with cancelled ctx = %v", err)
	}
}

func TestMsgIs(t *testing.T) {
	for _, tc := range []struct {
		line string
		want bool
	}{
		{`{"time":"x","level":"INFO","msg":"ready"}`, true},
		{`{"msg":"ready-ish"}`, false},
		{`ready`, false},
		{`{"msg":`, false},
		{`{"msg":1}`, false},
	} {
		if got := MsgIs("ready")(tc.line); got != tc.want {
			t.Errorf("MsgIs(ready)(%q) = %v, want %v", tc.line, got, tc.want)
		}
	}
}
