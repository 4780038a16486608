// Package cfgerr carries configuration errors from the packages that
// validate their own settings (policy, tun, stack, conntrack) to the loader
// that knows the file. A package reports the key path that is wrong; the
// loader turns the path into FILE:LINE:COL. Keeping positions out of the
// validating packages lets them be compiled from Go values in tests too.
package cfgerr

import (
	"strconv"
	"strings"
)

// FieldError is one invalid setting. Key is the TOML key path of the value
// that is wrong, with array-of-table indices written as decimal strings and
// counted from 0: {"rule", "3", "dst_port"} is dst_port of the fourth
// [[rule]]; {"sets", "lan", "elements", "2"} is the third element.
type FieldError struct {
	Key []string
	Msg string
}

// New returns a FieldError for key (path elements: string or int).
func New(msg string, key ...any) *FieldError {
	k := make([]string, 0, len(key))
	for _, e := range key {
		switch v := e.(type) {
		case string:
			k = append(k, v)
		case int:
			k = append(k, strconv.Itoa(v))
		case []string:
			k = append(k, v...)
		default:
			panic("cfgerr.New: key element must be string, int or []string")
		}
	}
	return &FieldError{Key: k, Msg: msg}
}

func (e *FieldError) Error() string {
	if len(e.Key) == 0 {
		return e.Msg
	}
	return strings.Join(e.Key, ".") + ": " + e.Msg
}

// List collects every error found, so one `tungate check` shows them all.
type List []*FieldError

// Add appends e unless it is nil.
func (l *List) Add(e *FieldError) {
	if e != nil {
		*l = append(*l, e)
	}
}

// Addf appends a new FieldError.
func (l *List) Addf(msg string, key ...any) { *l = append(*l, New(msg, key...)) }

// Err returns the list as an error, or nil when it is empty.
func (l List) Err() error {
	if len(l) == 0 {
		return nil
	}
	return l
}

func (l List) Error() string { return Lines(l) }

// Lines is the text of a list of errors, one per line: how both this List
// and the loader's positioned errors read.
func Lines[E error](l []E) string {
	var b strings.Builder
	for i, e := range l {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}
