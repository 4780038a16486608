package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Set files are read relative to the config file, and their errors point
// into the set file itself.
func TestSetFileErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "sets"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sets", "bad.txt"), []byte("198.18.1.0/24\n# note\n  198.18.999.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "gw.toml")
	src := "[defaults]\npolicy = \"drop\"\n\n[sets.bad]\ntype = \"cidr\"\nfiles = [\"sets/bad.txt\", \"sets/none.txt\"]\n"
	if err := os.WriteFile(cfg, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(cfg)
	if err == nil {
		t.Fatal("bad set file accepted")
	}
	got := err.Error()
	wantFile := filepath.Join(dir, "sets", "bad.txt") + `:3:3: [sets.bad]: invalid address "198.18.999.1"`
	if !strings.Contains(got, wantFile) {
		t.Errorf("error %q lacks %q", got, wantFile)
	}
	if !strings.Contains(got, cfg+":6:") || !strings.Contains(got, "cannot read set file") {
		t.Errorf("missing file not reported in the config: %q", got)
	}

	// A good file loads and its elements count.
	if err := os.WriteFile(filepath.Join(dir, "sets", "bad.txt"), []byte("198.18.1.0/24\n198.18.2.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	src = strings.Replace(src, `, "sets/none.txt"`, "", 1)
	if err := os.WriteFile(cfg, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s := f.Compiled.Summary(); len(s.Sets) != 1 || s.Sets[0].Size != 2 {
		t.Errorf("summary %+v", s)
	}
}

// The new sections and rule tables decode key by key: typos inside them
// are reported at their position.
func TestNewKeysDecode(t *testing.T) {
	src := `[reject]
max_rate = "10/s"
[reload]
existing_flows = "recheck"
[log]
burst = 3
[defaults]
policy = "drop"
[sets.ban]
type = "cidr"
dynamic = true
timeout = "1h"
max_elements = 10
[[rule]]
name = "r"
proto = "tcp"
ct_state = ["new"]
not_src_port = 7
limit = { rate = "1/s", burst = 2, per = "dst", match = "under", brust = 1 }
max_conns = { per = "src", count = 3 }
add_to = { set = "ban", key = "src", flush_flows = true }
action = "allow"
`
	_, err := Parse("x.toml", []byte(src))
	if err == nil || !strings.Contains(err.Error(), `x.toml:19:`) || !strings.Contains(err.Error(), "brust") {
		t.Fatalf("typo in limit: %v", err)
	}
	f, err := Parse("x.toml", []byte(strings.Replace(src, ", brust = 1", "", 1)))
	if err != nil {
		t.Fatal(err)
	}
	r := f.Policy.Rules[0]
	if r.Limit == nil || r.Limit.Per != "dst" || r.MaxConns.Count != 3 || !r.AddTo.FlushFlows {
		t.Errorf("rule decoded as %+v", r)
	}
	if f.Policy.Reject.MaxRate != "10/s" || !f.Compiled.RecheckExistingFlows() || f.Policy.Log.Burst != 3 {
		t.Errorf("sections: %+v %+v", f.Policy.Reject, f.Policy.Log)
	}
}
