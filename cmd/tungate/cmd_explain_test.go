package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExplainOffice(t *testing.T) {
	cfg := filepath.Join("..", "..", "configs", "office.toml")
	run := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if err := cmdExplain(append([]string{"-c", cfg}, args...), &out); err != nil {
			t.Fatalf("explain %v: %v", args, err)
		}
		return out.String()
	}
	out := run("--proto", "tcp", "--src", "198.18.2.5:40000", "--dst", "198.18.10.20:22")
	for _, want := range []string{
		`log-new-guests`, "matched: logged",
		`staff-ssh-to-servers`, "src 198.18.2.5 not in [@staff]",
		`guests-to-servers`, "dst_port 22 not in [@web]",
		"=> #7", "guests-no-internal",
		"verdict: reject/tcp-reset by guests-no-internal",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	out = run("--proto", "tcp", "--src", "198.18.1.5:40000", "--dst", "198.18.99.1:80", "--payload", "GET /${JNDI:x}", "--sni", "a.example")
	if !strings.Contains(out, "verdict: reject/tcp-reset by no-jndi") || !strings.Contains(out, "L7 keys not supported yet") {
		t.Errorf("payload explain:\n%s", out)
	}
	if err := cmdExplain([]string{"-c", cfg, "--src", "nonsense", "--dst", "198.18.1.1:1"}, &bytes.Buffer{}); err == nil {
		t.Error("bad --src accepted")
	}
}

func TestCheckWarnsShadowed(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.toml")
	src := "[defaults]\npolicy = \"drop\"\n[[rule]]\nname = \"all-tcp\"\nproto = \"tcp\"\naction = \"allow\"\n[[rule]]\nname = \"web\"\nproto = \"tcp\"\ndst_port = 80\naction = \"drop\"\n"
	if err := os.WriteFile(cfg, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := cmdCheck([]string{"-c", cfg}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `warning: rule "web" can never match: earlier rule "all-tcp"`) {
		t.Errorf("no shadow warning:\n%s", out.String())
	}
}
