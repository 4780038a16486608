package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tungate/tungate/internal/units"
	"github.com/tungate/tungate/policy"
)

func TestLoadFull(t *testing.T) {
	f, err := Load(filepath.Join("testdata", "full.toml"))
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, want %#v", name, got, want)
		}
	}
	check("tun.name", f.Tun.Name, "tg-test0")
	check("tun.mtu", f.Tun.MTU, 1400)
	check("tun.queues", f.Tun.Queues, 2)
	check("tun.addresses", f.Tun.Addresses, []string{"198.18.0.1/30", "2001:2::1/64"})
	check("routing.steer", f.Routing.Steer, []string{"lan0", "lan1"})
	check("routing.table", f.Routing.Table, 100)
	check("routing.priority", f.Routing.Priority, 200)
	check("egress.interface", f.Egress.Interface, "wan0")
	check("egress.mark", f.Egress.Mark, 7321)
	check("egress.dial_timeout", f.Egress.DialTimeout, units.Duration(3*time.Second))
	check("stack.tcp_max_in_flight", f.Stack.TCPMaxInFlight, 1024)
	check("stack.tcp_receive_buffer_max", f.Stack.TCPReceiveBufferMax, units.Size(4<<20))
	check("stack.tcp_send_buffer_max", f.Stack.TCPSendBufferMax, units.Size(65536))
	check("stack.congestion_control", f.Stack.CongestionControl, "cubic")
	check("stack.udp_idle_timeout", f.Stack.UDPIdleTimeout, units.Duration(45*time.Second))
	check("conntrack.max_flows", f.Conntrack.MaxFlows, 1000)
	check("fragments.memory", f.Fragments.Memory, units.Size(2<<20))
	check("fragments.timeout", f.Fragments.Timeout, units.Duration(20*time.Second))
	check("conntrack.max_flows_per_source", f.Conntrack.MaxFlowsPerSource, 10)
	check("control.socket", f.Control.Socket, "/run/tg-test.sock")
	p := f.Policy
	check("inspect.max_bytes", p.Inspect.MaxBytes, units.Size(8<<10))
	check("inspect.timeout", p.Inspect.Timeout, units.Duration(250*time.Millisecond))
	check("inspect.stream_depth", p.Inspect.StreamDepth, units.Size(0))
	check("inspect.stream_depth set", p.Inspect.StreamDepthSet, true)
	check("log", p.Log, policy.LogConfig{Level: "debug", Decisions: "all", Rate: "5/s"})
	check("defaults", p.Defaults, policy.Defaults{Policy: "reject", Invalid: "drop", RejectWith: "tcp-reset", Mode: "audit"})
	check("sets", p.Sets, map[string]policy.SetConfig{
		"web_ports": {Type: "port", Elements: policy.List{int64(80), int64(443), "8000-8999"}},
		"lan":       {Type: "cidr", Elements: policy.List{"198.18.1.0/24", "2001:2:0:1::/64"}},
	})
	if len(p.Rules) != 3 {
		t.Fatalf("%d rules, want 3", len(p.Rules))
	}
	check("rule 0", p.Rules[0], policy.RuleConfig{
		Name: "allow-web", Proto: policy.List{"tcp"}, Src: policy.List{"@lan"},
		DstPort: policy.List{"@web_ports"}, Action: "allow", Log: true,
	})
	check("rule 1", p.Rules[1], policy.RuleConfig{
		Name: "udp-and-tcp", Proto: policy.List{"tcp", "udp"}, Dst: policy.List{"198.18.2.0/24"},
		NotSrc: policy.List{"198.18.1.9"}, NotDst: policy.List{"198.18.2.9"},
		SrcPort: policy.List{"1024-65535"}, NotDstPort: policy.List{int64(25), "@web_ports"}, Action: "drop",
	})
	check("rule 2", p.Rules[2], policy.RuleConfig{
		Name: "no-jndi", Proto: policy.List{"tcp"},
		Payload: []policy.PayloadConfig{
			{Contains: "${jndi:", NoCase: true, Dir: "to_server"},
			{Contains: "evil", Dir: "both"},
		},
		Action: "reject", RejectWith: "tcp-reset",
	})
	if f.Compiled == nil {
		t.Fatal("Compiled is nil")
	}
	if got := f.Compiled.RuleNameAt(2); got != "no-jndi" {
		t.Errorf("compiled rule 2 is %q", got)
	}
	// The sub-table [conntrack.timeouts] decodes into whatever the struct
	// holds; found by key so this test does not depend on its field names.
	tv := reflect.ValueOf(f.Conntrack).FieldByName("Timeouts")
	if tv.IsValid() {
		if got := tv.FieldByName("UDP"); got.IsValid() && got.Interface() != units.Duration(20*time.Second) {
			t.Errorf("conntrack.timeouts.udp = %v", got)
		}
	}
}

func TestDefaultsApplied(t *testing.T) {
	f, err := Parse("min.toml", []byte("[defaults]\npolicy = \"allow\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if f.Control.Socket != DefaultSocket || f.Tun.Name != "tungate0" || f.Tun.MTU != 1500 {
		t.Errorf("defaults not applied: control=%+v tun=%+v", f.Control, f.Tun)
	}
	if f.Compiled == nil {
		t.Fatal("Compiled is nil")
	}
	if f.Policy.Inspect.StreamDepthSet {
		t.Error("StreamDepthSet without stream_depth in the file")
	}
	if got := f.Compiled.Inspect().StreamDepth; got == 0 {
		t.Error("absent stream_depth compiled to 0 (whole stream)")
	}
}

// at builds the expected "FILE:LINE:COL: " prefix from the nth occurrence
// of marker in src.
func at(t *testing.T, file, src, marker string, nth int) string {
	p := posOf(t, src, marker, nth)
	return fmt.Sprintf("%s:%d:%d: ", file, p.Line, p.Col)
}

const base = "[defaults]\npolicy = \"drop\"\n"

type want struct {
	marker string // where the error must point
	nth    int
	msg    string // a part of the message
}

func TestErrors(t *testing.T) {
	cases := []struct {
		name string
		src  string
		want []want
	}{
		{
			name: "syntax error",
			src:  base + "[tun]\nmtu = = 1500\n",
			want: []want{{"= 1500", 0, "expected value"}},
		},
		{
			name: "unknown key in third of three rules",
			src: base + `
[[rule]]
name = "a"
action = "allow"

[[rule]]
name = "b"
action = "drop"

[[rule]]
name = "c"
frobnicate = 1
action = "drop"
`,
			want: []want{{"frobnicate", 0, `unknown key "frobnicate" in [[rule]] #3 "c"`}},
		},
		{
			name: "bad dst_port element in second rule",
			src: base + `
[[rule]]
name = "a"
proto = "tcp"
dst_port = [80, 443]
action = "allow"

[[rule]]
name = "b"
proto = "tcp"
dst_port = [80, "http-alt"]
action = "allow"
`,
			want: []want{{`"http-alt"`, 0, `[[rule]] #2 "b" dst_port[1]: `}},
		},
		{
			name: "missing defaults.policy",
			src:  "[tun]\nmtu = 1500\n\n[defaults]\nmode = \"audit\"\n",
			want: []want{{"[defaults]", 0, "[defaults] policy: "}},
		},
		{
			name: "missing defaults section",
			src:  "[tun]\nmtu = 1500\n",
			want: []want{{"[tun]", 0, "[defaults] policy: "}},
		},
		{
			name: "duplicate rule name",
			src: base + `
[[rule]]
name = "same"
action = "allow"

[[rule]]
name = "same"
action = "drop"
`,
			want: []want{{`"same"`, 1, "duplicate"}},
		},
		{
			name: "bad size",
			src:  base + "[stack]\ntcp_receive_buffer_max = \"8XB\"\n",
			want: []want{{`"8XB"`, 0, `[stack] tcp_receive_buffer_max: invalid size "8XB"`}},
		},
		{
			name: "bad duration",
			src:  base + "[egress]\ndial_timeout = \"10 sec\"\n",
			want: []want{{`"10 sec"`, 0, `[egress] dial_timeout: invalid duration`}},
		},
		{
			name: "duration as integer",
			src:  base + "[inspect]\ntimeout = 500\n",
			want: []want{{`500`, 0, `[inspect] timeout: duration must be a string`}},
		},
		{
			name: "unknown top-level table",
			src:  base + "[tunnel]\nmtu = 1500\n",
			want: []want{{"[tunnel]", 0, "unknown table [tunnel]"}},
		},
		{
			name: "unknown top-level key",
			src:  "verbose = true\n" + base,
			want: []want{{"verbose", 0, `unknown key "verbose"`}},
		},
		{
			name: "unknown key in table",
			src:  base + "[tun]\nmtux = 1500\n",
			want: []want{{"mtux", 0, `unknown key "mtux" in [tun]`}},
		},
		{
			name: "bad set element",
			src:  base + "[sets.lan]\ntype = \"cidr\"\nelements = [\"198.18.1.0/24\", \"198.18.300.0/24\"]\n",
			want: []want{{`"198.18.300.0/24"`, 0, "[sets.lan] elements[1]: "}},
		},
		{
			name: "type error",
			src:  base + "[tun]\nmtu = \"big\"\n",
			want: []want{{`"big"`, 0, "[tun] mtu: expected integer, got string"}},
		},
		{
			name: "section is not a table",
			src:  "tun = 5\n" + base,
			want: []want{{"5", 0, "[tun]: expected a table, got integer"}},
		},
		{
			name: "unknown key in inline payload table",
			src: base + `
[[rule]]
name = "p"
proto = "tcp"
payload = [{ contains = "x" }, { contains = "y", nocse = true }]
action = "drop"
`,
			want: []want{{"nocse", 0, `unknown key "payload[1].nocse" in [[rule]] #1 "p"`}},
		},
		{
			name: "all errors, sorted by position",
			src: `[tun]
mtu = "big"
bogus = 1

[[rule]]
name = "x"
action = "allow"
color = "red"

[defaults]
policy = "drop"

[tunnel]
`,
			want: []want{
				{`"big"`, 0, "[tun] mtu: "},
				{"bogus", 0, `unknown key "bogus" in [tun]`},
				{"color", 0, `unknown key "color" in [[rule]] #1 "x"`},
				{"[tunnel]", 0, "unknown table [tunnel]"},
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { checkErrors(t, c.src, c.want) })
		// Windows line endings change no line or column before the newline.
		crlf := strings.ReplaceAll(c.src, "\n", "\r\n")
		t.Run(c.name+" crlf", func(t *testing.T) { checkErrors(t, crlf, c.want) })
	}
}

func checkErrors(t *testing.T, src string, want []want) {
	f, err := Parse("t.toml", []byte(src))
	if err == nil {
		t.Fatalf("no error; got %+v", f)
	}
	if f != nil {
		t.Error("File returned with an error")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(lines), len(want), err)
	}
	for i, w := range want {
		prefix := at(t, "t.toml", src, w.marker, w.nth)
		if !strings.HasPrefix(lines[i], prefix) || !strings.Contains(lines[i], w.msg) {
			t.Errorf("error %d:\n got  %s\n want %s...%s", i, lines[i], prefix, w.msg)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	name := filepath.Join(t.TempDir(), "none.toml")
	_, err := Load(name)
	if err == nil || !strings.HasPrefix(err.Error(), name+":1:1: ") {
		t.Fatalf("got %v", err)
	}
	if _, statErr := os.Stat(name); statErr == nil {
		t.Fatal("file exists")
	}
}

// TestSyntaxErrorPosition: a TOML syntax error is reported where it is,
// also when the parser only noticed it at the newline that ends the line.
func TestSyntaxErrorPosition(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"[defaults\npolicy = \"drop\"\n", "1:10"},
		{"[defaults]\npolicy = \"drop\n", "2:15"},
		{"[defaults]\npolicy = = \"drop\"\n", "2:10"},
		{"[defaults]\npolicy = \"drop\"\n[[rule]\n", "3:7"},
	} {
		path := filepath.Join(t.TempDir(), "t.toml")
		if err := os.WriteFile(path, []byte(tc.text), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Load(path)
		if err == nil || !strings.HasPrefix(err.Error(), path+":"+tc.want+":") {
			t.Errorf("%q: got %v; want an error at %s", tc.text, err, tc.want)
		}
	}
}
