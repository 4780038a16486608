package test

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tungate/tungate/control"
	"github.com/tungate/tungate/internal/lab"
)

const (
	setPort = 6301
	// setBanFor is the timeout given on the command line; the set's own
	// timeout is longer, so a listed remaining time tells them apart.
	setBanFor = 5 * time.Minute
)

// setRules drops sources in the dynamic set "ban" and allows TCP to the
// given ports; the static set "listed" is read from file.
func setRules(file string, ports ...int) string {
	return fmt.Sprintf(`
[sets.listed]
type  = "cidr"
files = [%q]

[[rule]]
name   = "set-listed"
dst    = "@listed"
action = "drop"
`, file) + `
[sets.ban]
type         = "cidr"
dynamic      = true
timeout      = "1h"
max_elements = 16

[[rule]]
name   = "set-banned"
src    = "@ban"
action = "drop"
` + allowTCPRule("set-allowed", ports...)
}

// TestSetBanRelease drives `tungate set` against a running gateway: an
// address added to a dynamic set is dropped on new connections, listed
// with its remaining time (text and JSON), still banned after a SIGHUP
// reload, and free again once deleted; refusals exit 1 with the reason.
// A static set read from a file shows the file's new content after the
// reload.
func TestSetBanRelease(t *testing.T) {
	l := newLab(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "tungate.sock")
	listed := filepath.Join(dir, "listed.txt")
	if err := os.WriteFile(listed, []byte("198.18.9.0/24\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gw := startGateway(t, l, gatewayConfigAt(sock, setRules(listed, setPort)))
	dst := netip.AddrPortFrom(lab.ServerV4, setPort)
	serve(t, l.Server, dst, echo)
	client := lab.ClientV4.String()

	assertWorks(t, l, dst, "before the ban")
	run := func(args ...string) string {
		t.Helper()
		out, errOut, code := cli(t, l, append([]string{"set", "-s", sock}, args...)...)
		if code != 0 {
			t.Fatalf("tungate set %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
		return out
	}

	run("add", "ban", client, "--timeout", setBanFor.String())
	assertDropped(t, l, dst, "after set add")
	waitDecision(t, gw, map[string]string{"rule": "set-banned", "action": "drop"})

	checkListed := func(when string) {
		t.Helper()
		out := run("list", "ban")
		f := strings.Fields(out)
		if len(f) != 3 || f[0] != client || f[1] != "expires" {
			t.Fatalf("%s: set list %q, want %q", when, out, client+" expires D")
		}
		rem, err := time.ParseDuration(f[2])
		if err != nil || rem <= setBanFor-2*time.Minute || rem > setBanFor {
			t.Errorf("%s: set list %q: want it to expire within %v (the given timeout, not the set's 1h)", when, out, setBanFor)
		}
		var es []control.SetElem
		if err := json.Unmarshal([]byte(run("list", "ban", "--json")), &es); err != nil {
			t.Fatalf("%s: set list --json: %v", when, err)
		}
		if len(es) != 1 || es[0].Elem != client || es[0].Expires == nil || es[0].Remaining() > setBanFor || es[0].Remaining() <= setBanFor-2*time.Minute {
			t.Errorf("%s: set list --json %+v", when, es)
		}
	}
	checkListed("after add")

	if out := run("list", "listed"); strings.TrimSpace(out) != "198.18.9.0/24" {
		t.Errorf("static set from file: %q", out)
	}

	// A reload keeps the dynamic set's contents (and the ban), as
	// designed, and reads set files again.
	if err := os.WriteFile(listed, []byte("198.18.10.0/24\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	writeConfig(t, gw, gatewayConfigAt(sock, setRules(listed, setPort, setPort+1)))
	mark := len(gw.Logs())
	if err := gw.Reload(); err != nil {
		t.Fatalf("SIGHUP: %v", err)
	}
	waitLog(t, gw, mark, "reloaded")
	checkListed("after reload")
	if out := run("list", "listed"); strings.TrimSpace(out) != "198.18.10.0/24" {
		t.Errorf("static set after its file changed and a reload: %q, want the new content", out)
	}
	assertDropped(t, l, dst, "after reload, banned")

	run("del", "ban", client)
	assertWorks(t, l, dst, "after set del")
	if out := run("list", "ban"); strings.TrimSpace(out) != "" {
		t.Errorf("set list after del: %q, want nothing", out)
	}

	// Refusals: exit 1 with the gateway's reason.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"del", "ban", client}, "is not in the set"},
		{[]string{"add", "nope", client}, `unknown set "nope"`},
		{[]string{"add", "ban", "198.18.1.0/24"}, "invalid address"},
	} {
		out, errOut, code := cli(t, l, append([]string{"set", "-s", sock}, tc.args...)...)
		if code != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("tungate set %s: exit %d, stderr %q (stdout %q); want 1 and %q", strings.Join(tc.args, " "), code, errOut, out, tc.want)
		}
	}
	if _, errOut, code := cli(t, l, "set", "-s", sock, "add", "ban"); code != 2 || !strings.Contains(errOut, "usage") {
		t.Errorf("tungate set add without element: exit %d, stderr %q; want 2 and the usage", code, errOut)
	}
}
