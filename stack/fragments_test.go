package stack

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/tungate/tungate/policy"
)

// splitPattern is 64 bytes long.
const splitPattern = "this-pattern-is-cut-in-two-by-the-fragment-boundary-0123456789AB"

// TestPipelineFragmentedClient runs TCP through the gateway from a client
// whose every full-size segment arrives as IP fragments of 512 bytes: the
// hook reassembles them before conntrack, the policy and gVisor see the
// segment, so a bulk transfer arrives whole and a payload pattern split
// across two fragments of one segment is still caught.
func TestPipelineFragmentedClient(t *testing.T) {
	pol, err := policy.Compile(policy.Config{
		Defaults: policy.Defaults{Policy: "drop"},
		Rules: []policy.RuleConfig{
			{Name: "no-split", Proto: policy.List{"tcp"}, Payload: []policy.PayloadConfig{{Contains: splitPattern}}, Action: "reject"},
			{Name: "allow-web", Proto: policy.List{"tcp"}, DstPort: policy.List{int64(portAllow)}, Action: "allow"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	pl := newFragmentingPipeline(t, pol, 512)
	for _, fam := range families() {
		t.Run(fam.name+"/bulk", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := pl.dial(ctx, fam.srv, portAllow)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			msg := bytes.Repeat([]byte("fragmented segments reassembled "), 3000)
			go func() {
				_, _ = c.Write(msg)
				_ = c.CloseWrite()
			}()
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			got, err := io.ReadAll(c)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if want := append(append([]byte(nil), msg...), "bye"...); !bytes.Equal(got, want) {
				t.Fatalf("client got %d bytes; want %d", len(got), len(want))
			}
		})
		t.Run(fam.name+"/pattern across fragments", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := pl.dial(ctx, fam.srv, portAllow)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// One 1,000-byte segment whose IP payload is cut at 512
			// bytes: whatever the TCP header's length (20 to 60 bytes),
			// the cut falls between data bytes 452 and 492, inside the
			// pattern at 440-503.
			data := []byte(strings.Repeat("a", 440) + splitPattern + strings.Repeat("b", 496))
			if _, err := c.Write(data); err != nil {
				t.Fatal(err)
			}
			expectReset(t, c, "pattern split across two fragments")
		})
	}
	st := pl.h.s.Fragments()
	if st.Reassembled == 0 {
		t.Errorf("no datagram was reassembled: %+v", st)
	}
	if n := pl.h.s.Stats().PayloadHits; n != 2 {
		t.Errorf("PayloadHits %d; want 2 (one per family)", n)
	}
}
