package policy

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
)

// filePosMarker separates a set file element's config key from its
// position in the set file inside a cfgerr key:
// {"sets", NAME, "files", J, filePosMarker, PATH, LINE, COL}.
const filePosMarker = "\x00at"

// SetFilePos tells whether a Compile error key points into a set file, and
// where: the loader reports those at FILE:LINE:COL of the set file rather
// than of the configuration.
func SetFilePos(key []string) (file string, line, col int, ok bool) {
	if len(key) != 8 || key[0] != "sets" || key[2] != "files" || key[4] != filePosMarker {
		return "", 0, 0, false
	}
	l, err1 := strconv.Atoi(key[6])
	c, err2 := strconv.Atoi(key[7])
	if err1 != nil || err2 != nil {
		return "", 0, 0, false
	}
	return key[5], l, c, true
}

// fileElem is one element read from a set file.
type fileElem struct {
	text      string
	line, col int
}

// resolveSetFile makes a set file path relative to the config directory.
func resolveSetFile(dir, name string) string {
	if filepath.IsAbs(name) || dir == "" {
		return name
	}
	return filepath.Join(dir, name)
}

// readSetFile reads one element per line; '#' starts a comment, blank
// lines are skipped, surrounding blanks are ignored.
func readSetFile(path string) ([]fileElem, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseSetFile(data), nil
}

func parseSetFile(data []byte) []fileElem {
	var out []fileElem
	line := 0
	for len(data) > 0 {
		line++
		l := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			l, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if i := bytes.IndexByte(l, '#'); i >= 0 {
			l = l[:i]
		}
		start := 0
		for start < len(l) && (l[start] == ' ' || l[start] == '\t') {
			start++
		}
		t := bytes.TrimRight(l[start:], " \t\r")
		if len(t) == 0 {
			continue
		}
		out = append(out, fileElem{text: string(t), line: line, col: start + 1})
	}
	return out
}
