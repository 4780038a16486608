package units

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

func TestParseSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Size
	}{
		{"0", 0},
		{"65536", 65536},
		{"1B", 1},
		{"64KiB", 64 << 10},
		{"8MiB", 8 << 20},
		{"2GiB", 2 << 30},
		{"1KB", 1000},
		{"3MB", 3_000_000},
		{"1GB", 1_000_000_000},
		// The one-letter suffixes are binary, as in most tools' flags.
		{"4K", 4 << 10},
		{"4M", 4 << 20},
		{"4G", 4 << 30},
		{" 8 MiB ", 8 << 20},
		{"+5", 5},
		{"4611686018427387904", 1 << 62},
		{"4294967296GiB", 1 << 62},
	} {
		got, err := ParseSize(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseSize(%q): got %d, %v; want %d", c.in, got, err, c.want)
		}
	}
}

func TestParseSizeErrors(t *testing.T) {
	for _, c := range []struct {
		in, msg string
	}{
		{"", "invalid size"},
		{"MiB", "invalid size"},
		{"-1", "invalid size"},
		{"-1KiB", "invalid size"},
		{"1.5MiB", "invalid size"},
		{"8mib", "invalid size"}, // suffixes are case-sensitive: "mb" could mean millibits
		{"8 TiB", "invalid size"},
		{"0x10", "invalid size"},
		{"1KiBKiB", "invalid size"},
		{"4611686018427387905", "too large"},
		{"4294967297GiB", "too large"},
		{"9223372036854775808", "invalid size"}, // past int64
	} {
		got, err := ParseSize(c.in)
		if err == nil || !strings.Contains(err.Error(), c.msg) || !strings.Contains(err.Error(), c.in) {
			t.Errorf("ParseSize(%q): got %d, %v; want an error naming the input and saying %q", c.in, got, err, c.msg)
		}
	}
}

func TestSizeString(t *testing.T) {
	for _, c := range []struct {
		in   Size
		want string
	}{
		{0, "0"},
		{1, "1"},
		{1000, "1000"},
		{1 << 10, "1KiB"},
		{1536, "1536"},
		{64 << 10, "64KiB"},
		{1 << 20, "1MiB"},
		{(1 << 20) + (1 << 10), "1025KiB"},
		{6 << 20, "6MiB"},
		{1 << 30, "1GiB"},
		{1 << 40, "1024GiB"},
		{1_000_000, "1000000"},
	} {
		if got := c.in.String(); got != c.want {
			t.Errorf("Size(%d).String(): got %q, want %q", int64(c.in), got, c.want)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Duration
	}{
		{"0", 0},
		{"0s", 0},
		{"500ms", 500 * time.Millisecond},
		{"30s", 30 * time.Second},
		{"5m", 5 * time.Minute},
		{"1h30m", 90 * time.Minute},
		{"1.5s", 1500 * time.Millisecond},
		{"0d", 0},
		{"5d", 5 * 24 * time.Hour},
		{"106751d", 106751 * 24 * time.Hour},
	} {
		got, err := ParseDuration(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseDuration(%q): got %v, %v; want %v", c.in, got, err, c.want)
		}
	}
}

func TestParseDurationErrors(t *testing.T) {
	for _, c := range []struct {
		in, msg string
	}{
		{"", "invalid duration"},
		{"30", "has no unit"}, // a bare number: the message says what is missing
		{"-5s", "invalid duration"},
		{"-1d", "invalid duration"},
		{"1.5d", "invalid duration"}, // days are whole
		{"d", "invalid duration"},
		{"5 d", "invalid duration"},
		{"1d12h", "invalid duration"},
		{"5w", "invalid duration"},
		{"106752d", "too long"},                 // would wrap to a negative duration
		{"9223372036854775807d", "too long"},    // would wrap to -24h
		{"9223372036854775808d", "invalid"},     // past int64
		{"3000000h", "invalid duration"},        // time.ParseDuration's own overflow
		{"9223372036854775807ns1ns", "invalid"}, // the same, by addition
	} {
		got, err := ParseDuration(c.in)
		if err == nil || !strings.Contains(err.Error(), c.msg) || !strings.Contains(err.Error(), c.in) {
			t.Errorf("ParseDuration(%q): got %v, %v; want an error naming the input and saying %q", c.in, got, err, c.msg)
		}
	}
}

func TestDurationString(t *testing.T) {
	for _, c := range []struct {
		in   Duration
		want string
	}{
		{0, "0s"},
		{Duration(500 * time.Millisecond), "500ms"},
		{Duration(5 * 24 * time.Hour), "120h0m0s"},
	} {
		if got := c.in.String(); got != c.want {
			t.Errorf("Duration(%d).String(): got %q, want %q", int64(c.in), got, c.want)
		}
		if got := c.in.D(); got != time.Duration(c.in) {
			t.Errorf("Duration(%d).D(): got %v", int64(c.in), got)
		}
	}
}

// TestTOML decodes through the TOML library the config loader uses, so the
// Unmarshaler methods are the ones it actually calls.
func TestTOML(t *testing.T) {
	type conf struct {
		Size    Size     `toml:"size"`
		Timeout Duration `toml:"timeout"`
	}
	for _, c := range []struct {
		doc  string
		want conf
		err  string // empty: no error
	}{
		{`size = "8MiB"` + "\n" + `timeout = "30s"`, conf{8 << 20, Duration(30 * time.Second)}, ""},
		{`size = 65536` + "\n" + `timeout = "5d"`, conf{65536, Duration(5 * 24 * time.Hour)}, ""},
		{`size = 0`, conf{}, ""},
		{`size = -1`, conf{}, "must not be negative"},
		{`size = 1.5`, conf{}, "must be an integer or a string"},
		{`size = true`, conf{}, "must be an integer or a string"},
		{`size = "lots"`, conf{}, `invalid size "lots"`},
		{`timeout = 30`, conf{}, "duration must be a string"},
		{`timeout = "-1s"`, conf{}, `invalid duration "-1s"`},
		{`timeout = "106752d"`, conf{}, "too long"},
	} {
		var got conf
		_, err := toml.Decode(c.doc, &got)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%q: got error %v, want %+v", c.doc, err, c.want)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%q: got %+v, %v; want an error saying %q", c.doc, got, err, c.err)
		case c.err == "" && got != c.want:
			t.Errorf("%q: got %+v, want %+v", c.doc, got, c.want)
		}
	}
}

// TestDurationFlag: a command-line duration takes the config file's forms,
// and a bare number is refused with a message naming the missing unit.
func TestDurationFlag(t *testing.T) {
	var d Duration
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Var(&d, "timeout", "")
	if err := fs.Parse([]string{"--timeout", "2d"}); err != nil || d.D() != 48*time.Hour {
		t.Errorf("--timeout 2d: %v, %v; want 48h", err, d)
	}
	err := fs.Parse([]string{"--timeout", "10"})
	if err == nil || !strings.Contains(err.Error(), `duration "10" has no unit (write e.g. "10s"`) {
		t.Errorf("--timeout 10: got %v; want a message naming the missing unit", err)
	}
}
