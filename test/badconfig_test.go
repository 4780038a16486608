package test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tungate/tungate/internal/lab"
)

// badConfigCase is a config with exactly one problem and where it is.
type badConfigCase struct {
	name string
	text string
	// mark is a substring of the offending line; the reported line must be
	// the line holding it, the column must fall within that line.
	mark string
	// msg is a fragment the message must contain (lower case).
	msg string
}

// badConfigHead is valid on its own; every case appends rules to it.
const badConfigHead = `[tun]
name = "tgbad0"

[egress]
interface = "wan0"

[defaults]
policy = "drop"
`

func badConfigCases() []badConfigCase {
	return []badConfigCase{
		{
			name: "unknown key in 3rd rule",
			text: badConfigHead + `
[[rule]]
name = "one"
proto = "tcp"
dst_port = 80
action = "allow"

[[rule]]
name = "two"
proto = "udp"
action = "drop"

[[rule]]
name = "three"
proto = "tcp"
colour = "red"
action = "allow"
`,
			mark: `colour = "red"`,
			msg:  "colour",
		},
		{
			name: "invalid dst_port in 2nd rule",
			text: badConfigHead + `
[[rule]]
name = "one"
proto = "tcp"
dst_port = 443
action = "allow"

[[rule]]
name = "two"
proto = "tcp"
dst_port = 70000
action = "allow"
`,
			mark: `dst_port = 70000`,
			msg:  "70000",
		},
		{
			name: "toml syntax error",
			text: badConfigHead + `
[[rule]]
name = "one"
proto = "tcp"
action = "allow
dst_port = 22
`,
			mark: `action = "allow`,
			msg:  "",
		},
	}
}

// goodConfig is accepted by check.
const goodConfig = badConfigHead + `
[[rule]]
name = "one"
proto = "tcp"
dst_port = [80, "8000-8999"]
action = "allow"

[[rule]]
name = "two"
proto = ["udp", "icmp"]
action = "drop"
`

// posRe matches one FILE:LINE:COL: message line for a file called bad.toml,
// given relatively so the text is exactly what an operator sees.
var posRe = regexp.MustCompile(`(?m)^bad\.toml:(\d+):(\d+): (.*)$`)

// lineOf returns the 1-based line holding mark and that line's text.
func lineOf(t *testing.T, text, mark string) (int, string) {
	t.Helper()
	for i, l := range strings.Split(text, "\n") {
		if strings.Contains(l, mark) {
			return i + 1, l
		}
	}
	t.Fatalf("test bug: %q not in config", mark)
	return 0, ""
}

// assertPosition checks that out reports the problem at the line holding
// c.mark, with a column inside that line, and returns the matching line.
func assertPosition(t *testing.T, out string, c badConfigCase) string {
	t.Helper()
	wantLine, lineText := lineOf(t, c.text, c.mark)
	ms := posRe.FindAllStringSubmatch(out, -1)
	if len(ms) == 0 {
		t.Fatalf("no bad.toml:LINE:COL: line in output:\n%s", out)
	}
	for _, m := range ms {
		line, _ := strconv.Atoi(m[1])
		col, _ := strconv.Atoi(m[2])
		if line != wantLine {
			continue
		}
		if col < 1 || col > len(lineText)+1 {
			t.Errorf("column %d is outside line %d (%q)", col, line, lineText)
		}
		if c.msg != "" && !strings.Contains(strings.ToLower(m[3]), c.msg) {
			t.Errorf("message %q does not mention %q", m[3], c.msg)
		}
		return m[0]
	}
	t.Fatalf("want an error at bad.toml:%d (%q); got:\n%s", wantLine, lineText, out)
	return ""
}

// runTungate runs the binary in dir with args and returns its combined
// output and exit status (-1 when it did not exit normally).
func runTungate(t *testing.T, ctx context.Context, dir string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.CommandContext(ctx, tungateBin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	default:
		t.Fatalf("run %v: %v\n%s", args, err, out)
		return "", -1
	}
}

func TestCheckBadConfig(t *testing.T) {
	for _, c := range badConfigCases() {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "bad.toml"), []byte(c.text), 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, code := runTungate(t, ctx, dir, "check", "-c", "bad.toml")
			if code != 1 {
				t.Errorf("tungate check exit status = %d, want 1; output:\n%s", code, out)
			}
			got := assertPosition(t, out, c)
			t.Logf("reported: %s", got)
		})
	}
}

func TestCheckGoodConfig(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "good.toml"), []byte(goodConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, code := runTungate(t, ctx, dir, "check", "-c", "good.toml")
	if code != 0 {
		t.Fatalf("tungate check exit status = %d, want 0; output:\n%s", code, out)
	}
	if !regexp.MustCompile(`\bok\b`).MatchString(out) {
		t.Errorf("tungate check output %q does not say ok", out)
	}
}

// TestRunBadConfig: `tungate run` refuses the same files with the same
// positions, before creating anything: no TUN device appears in the
// gateway namespace.
func TestRunBadConfig(t *testing.T) {
	l := newLab(t)
	for _, c := range badConfigCases() {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "bad.toml"), []byte(c.text), 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := l.Gateway.Command(ctx, tungateBin, "run", "-c", "bad.toml")
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			switch {
			case err == nil:
				t.Errorf("tungate run exited 0 on a bad config; output:\n%s", out)
			case !errors.As(err, &ee):
				t.Fatalf("tungate run: %v\n%s", err, out)
			case ctx.Err() != nil:
				t.Fatalf("tungate run did not exit within 30s; output:\n%s", out)
			}
			got := assertPosition(t, string(out), c)
			t.Logf("reported: %s", got)
			checkOut, _ := runTungate(t, ctx, dir, "check", "-c", "bad.toml")
			if !strings.Contains(checkOut, got) {
				t.Errorf("run said %q, check said:\n%s", got, checkOut)
			}

			tuns, err := ipOut(t, l.Gateway, "-d", "link", "show", "type", "tun")
			if err != nil {
				t.Fatal(err)
			}
			if tuns != "" {
				t.Errorf("a TUN device exists after the refused run:\n%s", tuns)
			}
		})
	}
}

// TestRunMissingEgressInterface: an [egress] interface that does not exist
// in the gateway's namespace is refused at start, by name, before any TUN
// device or steering exists; never a gateway that says ready and cannot
// dial.
func TestRunMissingEgressInterface(t *testing.T) {
	l := newLab(t)
	dir := t.TempDir()
	cfg := strings.Replace(gatewayConfigAt(filepath.Join(dir, "tungate.sock"), ""), `interface = "`+lab.GatewayWANIf+`"`, `interface = "nosuch0"`, 1)
	if !strings.Contains(cfg, "nosuch0") {
		t.Fatal("test config has no egress interface to replace")
	}
	if err := os.WriteFile(filepath.Join(dir, "gw.toml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := l.Gateway.Command(ctx, tungateBin, "run", "-c", filepath.Join(dir, "gw.toml")).CombinedOutput()
	if err == nil || ctx.Err() != nil {
		t.Fatalf("tungate run with a missing egress interface: err %v; output:\n%s", err, out)
	}
	if !strings.Contains(string(out), `[egress] interface "nosuch0"`) || strings.Contains(string(out), `"msg":"ready"`) {
		t.Errorf("want a refusal naming the interface and no ready line; output:\n%s", out)
	}
	if tuns, err := ipOut(t, l.Gateway, "-d", "link", "show", "type", "tun"); err != nil || tuns != "" {
		t.Errorf("a TUN device exists after the refused run (%v):\n%s", err, tuns)
	}
}
