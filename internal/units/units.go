// Package units holds the value types the configuration file shares across
// packages: byte sizes written as "8MiB" or 65536, and durations written as
// "30s". Both decode from TOML and print back in the same form.
package units

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Size is a byte count. In TOML it is an integer or a string with an
// optional binary (KiB, MiB, GiB) or decimal (KB, MB, GB) suffix.
type Size int64

// UnmarshalTOML implements toml.Unmarshaler.
func (s *Size) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case int64:
		if x < 0 {
			return fmt.Errorf("size must not be negative, got %d", x)
		}
		*s = Size(x)
		return nil
	case string:
		n, err := ParseSize(x)
		if err != nil {
			return err
		}
		*s = n
		return nil
	default:
		return fmt.Errorf("size must be an integer or a string like \"8MiB\", got %T", v)
	}
}

var sizeSuffixes = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1},
}

// ParseSize parses "65536", "64KiB", "8MiB", "1GB".
func ParseSize(text string) (Size, error) {
	t := strings.TrimSpace(text)
	mult := int64(1)
	for _, sfx := range sizeSuffixes {
		if strings.HasSuffix(t, sfx.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, sfx.suffix)), sfx.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid size %q (want an integer or a string like \"8MiB\")", text)
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q is too large", text)
	}
	return Size(n * mult), nil
}

func (s Size) String() string {
	n := int64(s)
	switch {
	case n != 0 && n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + "GiB"
	case n != 0 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "MiB"
	case n != 0 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + "KiB"
	}
	return strconv.FormatInt(n, 10)
}

// Duration is a time.Duration written as a Go duration string ("500ms",
// "30s", "5m"). Days are accepted as "5d" because conntrack timeouts are
// naturally written that way.
type Duration time.Duration

// UnmarshalTOML implements toml.Unmarshaler.
func (d *Duration) UnmarshalTOML(v any) error {
	s, ok := v.(string)
	if !ok {
		return fmt.Errorf("duration must be a string like \"30s\", got %T", v)
	}
	x, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(x)
	return nil
}

const day = 24 * time.Hour

// ParseDuration is time.ParseDuration plus a whole-days suffix ("5d").
func ParseDuration(s string) (time.Duration, error) {
	if strings.HasSuffix(s, "d") {
		n, err := strconv.ParseInt(strings.TrimSuffix(s, "d"), 10, 64)
		if err == nil && n >= 0 {
			// Past about 292 years the nanosecond count would wrap,
			// to a short or negative timeout.
			if n > math.MaxInt64/int64(day) {
				return 0, fmt.Errorf("duration %q is too long (at most %dd)", s, math.MaxInt64/int64(day))
			}
			return time.Duration(n) * day, nil
		}
	}
	x, err := time.ParseDuration(s)
	if err != nil || x < 0 {
		if n, nerr := strconv.ParseUint(s, 10, 64); nerr == nil && n > 0 {
			return 0, fmt.Errorf("duration %q has no unit (write e.g. \"%ss\" or \"%sms\")", s, s, s)
		}
		return 0, fmt.Errorf("invalid duration %q (want a string like \"500ms\", \"30s\" or \"5d\")", s)
	}
	return x, nil
}

// Set parses a command-line flag's value (flag.Value), with the same
// forms and messages as the config file.
func (d *Duration) Set(s string) error {
	x, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(x)
	return nil
}

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }
