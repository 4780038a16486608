package config

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/tungate/tungate/internal/cfgerr"
)

// Error is one problem in a configuration file, at the place an editor
// should jump to.
type Error struct {
	File string
	Pos
	Msg string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// Errors is every problem found in one file, sorted by position, so one
// `tungate check` run shows them all. Its text is one error per line.
type Errors []*Error

func (l Errors) Error() string { return cfgerr.Lines(l) }

// sorted orders by position and drops exact duplicates (the same problem
// found by decoding and by validation).
func (l Errors) sorted() Errors {
	slices.SortStableFunc(l, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col), strings.Compare(a.Msg, b.Msg))
	})
	return slices.CompactFunc(l, func(a, b *Error) bool { return *a == *b })
}

// oneLine keeps every error on its own FILE:LINE:COL line even when a
// library message spans several.
func oneLine(msg string) string {
	msg = strings.TrimSpace(msg)
	if !strings.ContainsAny(msg, "\r\n") {
		return msg
	}
	return strings.Join(strings.Fields(msg), " ")
}
