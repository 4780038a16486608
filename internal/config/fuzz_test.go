package config

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var errLine = regexp.MustCompile(`^f\.toml:([0-9]+):([0-9]+): \S`)

func FuzzParse(f *testing.F) {
	for _, name := range []string{"full.toml"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(tricky))
	f.Add([]byte("[[rule]]\nname = 'x'\nfoo.bar = 1\n[rule.tls]\nsni = 2\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse("f.toml", data)
		if err == nil {
			if file == nil || file.Compiled == nil {
				t.Fatal("no error and no compiled policy")
			}
			return
		}
		nlines := strings.Count(string(data), "\n") + 1
		for _, line := range strings.Split(err.Error(), "\n") {
			m := errLine.FindStringSubmatch(line)
			if m == nil {
				t.Fatalf("error line without FILE:LINE:COL: %q", line)
			}
			if n, _ := strconv.Atoi(m[1]); n < 1 || n > nlines {
				t.Fatalf("line %d outside input of %d lines: %q", n, nlines, line)
			}
		}
	})
}
