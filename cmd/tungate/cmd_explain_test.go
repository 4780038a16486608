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
	if !strings.Contains(out, "verdict: reject/tcp-reset by no-jndi") || !strings.Contains(out, `l7: tls.sni="a.example"`) {
		t.Errorf("payload explain:\n%s", out)
	}
	if err := cmdExplain([]string{"-c", cfg, "--src", "nonsense", "--dst", "198.18.1.1:1"}, &bytes.Buffer{}); err == nil {
		t.Error("bad --src accepted")
	}
}

func TestExplainL7(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.toml")
	src := `[defaults]
policy = "drop"
[[rule]]
name = "block-sni"
proto = "tcp"
dst_port = 443
tls.sni = { suffix = ["blocked.example"] }
action = "reject"
[[rule]]
name = "no-admin"
proto = "tcp"
dst_port = 80
http.path = { prefix = "/admin" }
action = "reject"
reject_with = "http-403"
[[rule]]
name = "no-ads"
proto = "udp"
dst_port = 53
dns.qname = { suffix = "ads.example" }
action = "reject"
[[rule]]
name = "web"
proto = ["tcp", "udp"]
dst_port = [80, 443, 53]
action = "allow"
`
	if err := os.WriteFile(cfg, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if err := cmdExplain(append([]string{"-c", cfg, "--src", "198.18.1.5:40000"}, args...), &out); err != nil {
			t.Fatalf("explain %v: %v", args, err)
		}
		return out.String()
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--dst", "198.18.2.1:443", "--sni", "WWW.Blocked.Example."}, []string{`tls.sni "www.blocked.example"`, "verdict: reject/tcp-reset by block-sni"}},
		{[]string{"--dst", "198.18.2.1:443", "--sni", "fine.example"}, []string{"does not match", "verdict: allow by web"}},
		{[]string{"--dst", "198.18.2.1:443"}, []string{"tls.sni absent", "verdict: allow by web"}},
		{[]string{"--dst", "198.18.2.1:80", "--http-host", "a.example:8080", "--http-path", "/admin/x"}, []string{`http.path "/admin/x"`, "verdict: reject/http-403 by no-admin"}},
		{[]string{"--dst", "198.18.2.1:80", "--payload", "GET /admin HTTP/1.1\r\nHost: a\r\n\r\n"}, []string{"fields read from --payload", `http.path "/admin"`, "verdict: reject/http-403 by no-admin"}},
		{[]string{"--proto", "udp", "--dst", "198.18.2.1:53", "--dns-qname", "x.ads.example"}, []string{"verdict: reject/dns-nxdomain by no-ads"}},
	} {
		out := run(tc.args...)
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("explain %v: output lacks %q:\n%s", tc.args, w, out)
			}
		}
	}
	if err := cmdExplain([]string{"-c", cfg, "--src", "198.18.1.5:1", "--dst", "198.18.2.1:443", "--sni", "a", "--dns-qname", "b"}, &bytes.Buffer{}); err == nil {
		t.Error("fields of two protocols accepted")
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
