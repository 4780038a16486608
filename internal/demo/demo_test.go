package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tungate/tungate/configs"
	"github.com/tungate/tungate/internal/lab"
	"github.com/tungate/tungate/internal/testenv"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, Connected},
		{&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, Refused},
		{&net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, Reset},
		{fmt.Errorf("write: %w", syscall.EPIPE), Reset},
		{io.EOF, Closed},
		{context.DeadlineExceeded, Timeout},
		{fmt.Errorf("dial: %w", context.Canceled), Cancelled},
		{&net.OpError{Op: "dial", Err: timeoutErr{}}, Timeout},
		{syscall.EHOSTUNREACH, Unreach},
		{lab.ErrNoReply, NoReply},
		{errors.New("odd"), "error: odd"},
	} {
		if got := classify(tc.err); got != tc.want {
			t.Errorf("classify(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestCheckGrades(t *testing.T) {
	c := Check{Name: "x", Accept: []string{Refused, NoReply}, Probe: func(context.Context, *lab.Lab, *Servers) string { return Echo }}
	r := c.Run(context.Background(), nil, nil)
	if r.OK || r.Observed != Echo || r.Expected != "refused or no reply" {
		t.Errorf("Run = %+v, want a failing row observing echo", r)
	}
	c.Probe = func(context.Context, *lab.Lab, *Servers) string { return NoReply }
	if r := c.Run(context.Background(), nil, nil); !r.OK {
		t.Errorf("Run = %+v, want OK for the second accepted outcome", r)
	}
}

func TestWriteTable(t *testing.T) {
	var b bytes.Buffer
	WriteTable(&b, []Row{{"a", "200", "200", true}, {"bb", "refused", "timeout", false}})
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("table has %d lines, want header + 2:\n%s", len(lines), b.String())
	}
	if !strings.HasSuffix(lines[1], " ok") || !strings.HasSuffix(lines[2], " FAIL") {
		t.Errorf("OK column wrong:\n%s", b.String())
	}
	if strings.Index(lines[1], "200") != strings.Index(lines[2], "refused") {
		t.Errorf("columns not aligned:\n%s", b.String())
	}
}

func TestWriteDecisions(t *testing.T) {
	var b bytes.Buffer
	WriteDecisions(&b, []string{
		`{"msg":"ready"}`,
		`{"msg":"decision","rule":"reject-8081","action":"reject","proto":"tcp","src":"198.18.1.2:40000","dst":"198.18.2.2:8081","reason":"dst_port"}`,
		`not json`,
		`{"msg":"decision","rule":"block-sni","action":"reject","proto":"tcp","src":"198.18.1.2:40001","dst":"198.18.2.2:443","reason":"l7","sni":"blocked.example"}`,
	})
	out := b.String()
	if !strings.Contains(out, "sni=blocked.example") {
		t.Errorf("WriteDecisions lacks the SNI detail:\n%s", out)
	}
	if !strings.Contains(out, "reject-8081") || !strings.Contains(out, "198.18.1.2:40000 -> 198.18.2.2:8081") || strings.Contains(out, "ready") {
		t.Errorf("WriteDecisions:\n%s", out)
	}
}

func TestWithSocketMakesPathUnique(t *testing.T) {
	got := string(withSocket(configs.Demo, "abcd1234"))
	if strings.Contains(got, `"`+demoSocket+`"`) || !strings.Contains(got, `"/run/tungate-demo-abcd1234.sock"`) {
		t.Errorf("control socket not rewritten; configs/demo.toml must keep socket = %q", demoSocket)
	}
}

// Without a gateway the lab forwards in the kernel: the allowed rows must
// pass (the servers and probes work) and every blocking row must fail (the
// probes can tell blocked from allowed).
func TestScenarioWithoutGatewayOnlyAllowedRowsPass(t *testing.T) {
	testenv.RequireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := lab.New(ctx, lab.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })

	want := map[string]struct {
		ok  bool
		obs string
	}{
		CheckHTTPv4:     {true, "200"},
		CheckRejectTCP:  {false, Connected},
		CheckDropTCP:    {false, Connected},
		CheckJNDI:       {false, Closed + jndiSeen},
		CheckUDPEcho:    {true, Echo},
		CheckUDPBlocked: {false, Echo},
		CheckPingV4:     {true, Reply},
		CheckHTTPv6:     {true, "200"},
		CheckPingV6:     {true, Reply},
		CheckSNIAllowed: {true, Handshake},
		CheckSNIBlocked: {false, Handshake},
		CheckHTTPHost:   {false, "200"},
		CheckDNSBlocked: {false, Answer},
		CheckDNSAllowed: {true, Answer},
	}
	rows := RunScenario(ctx, l)
	if len(rows) != len(want) {
		t.Fatalf("got %d rows, want %d: %+v", len(rows), len(want), rows)
	}
	for _, r := range rows {
		w, found := want[r.Name]
		if !found {
			t.Errorf("unexpected row %q", r.Name)
			continue
		}
		if r.OK != w.ok || r.Observed != w.obs {
			t.Errorf("%s: observed %q ok=%v, want %q ok=%v", r.Name, r.Observed, r.OK, w.obs, w.ok)
		}
	}
}

// The demo against the real binary, row by row. It builds cmd/tungate
// unless TUNGATE_BIN names a binary.
func TestDemoAgainstGateway(t *testing.T) {
	testenv.RequireRoot(t)
	bin := os.Getenv("TUNGATE_BIN")
	if bin == "" {
		bin = filepath.Join(t.TempDir(), "tungate")
		out, err := exec.Command("go", "build", "-o", bin, "github.com/tungate/tungate/cmd/tungate").CombinedOutput()
		if err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("building cmd/tungate: %v\n%s", err, out)
			}
			t.Skipf("cmd/tungate does not build yet: %v\n%s", err, out)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	l, err := lab.New(ctx, lab.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	gw, err := l.StartGateway(ctx, bin, string(withSocket(configs.Demo, l.Suffix)))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range RunScenario(ctx, l) {
		t.Run(r.Name, func(t *testing.T) {
			if !r.OK {
				t.Errorf("observed %q, want %s", r.Observed, r.Expected)
			}
		})
	}
	if err := gw.Stop(stopTimeout); err != nil {
		t.Errorf("gateway shutdown: %v", err)
	}
	if t.Failed() {
		t.Logf("gateway log:\n%s", gw.Output())
	}
}
