package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tungate/tungate/policy"
)

// Operations on the running policy's sets: an operator (or a script fed by
// an IDS) bans and releases addresses in a dynamic set without a reload.
const (
	OpSetAdd  = "set.add"
	OpSetDel  = "set.del"
	OpSetList = "set.list"
)

// SetArgs name a set and, for add and del, one element. Timeout is a Go
// duration ("10m"); empty means the set's own timeout.
type SetArgs struct {
	Name    string `json:"name"`
	Elem    string `json:"elem,omitempty"`
	Timeout string `json:"timeout,omitempty"`
}

// SetElem is one listed element. Expires and RemainingMS are set for
// elements of dynamic sets only; the remaining time is taken on the
// gateway, so a client's clock does not matter.
type SetElem struct {
	Elem        string     `json:"elem"`
	Expires     *time.Time `json:"expires,omitempty"`
	RemainingMS int64      `json:"remaining_ms,omitempty"`
}

// Remaining is the element's lifetime left when it was listed (0 for
// static elements).
func (e SetElem) Remaining() time.Duration { return time.Duration(e.RemainingMS) * time.Millisecond }

// Text is the element as `tungate set list` prints it.
func (e SetElem) Text() string {
	if e.Expires == nil {
		return e.Elem
	}
	return fmt.Sprintf("%s expires %s", e.Elem, e.Remaining().Round(time.Second))
}

// timeout parses a.Timeout; zero means the set's default.
func (a SetArgs) timeout() (time.Duration, error) {
	if a.Timeout == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(a.Timeout)
	if err != nil {
		return 0, fmt.Errorf("bad timeout %q: %w", a.Timeout, err)
	}
	if d <= 0 {
		return 0, fmt.Errorf("bad timeout %q: must be positive", a.Timeout)
	}
	return d, nil
}

func decodeSetArgs(raw json.RawMessage, needElem bool) (SetArgs, error) {
	var a SetArgs
	if err := json.Unmarshal(raw, &a); err != nil {
		return a, fmt.Errorf("bad arguments: %w", err)
	}
	switch {
	case a.Name == "":
		return a, errors.New("missing set name")
	case needElem && a.Elem == "":
		return a, errors.New("missing element")
	}
	return a, nil
}

// The set operations act on the policy in force at the request: dynamic
// contents are shared with the policies a reload makes
// (policy.CarryCountersFrom), so an element added during a reload is not
// lost.

func setAdd(b Backend) HandlerFunc {
	return func(_ context.Context, raw json.RawMessage) (any, error) {
		a, err := decodeSetArgs(raw, true)
		if err != nil {
			return nil, err
		}
		d, err := a.timeout()
		if err != nil {
			return nil, err
		}
		if err := b.Policy().SetAdd(a.Name, a.Elem, d); err != nil {
			return nil, err
		}
		return struct{}{}, nil
	}
}

func setDel(b Backend) HandlerFunc {
	return func(_ context.Context, raw json.RawMessage) (any, error) {
		a, err := decodeSetArgs(raw, true)
		if err != nil {
			return nil, err
		}
		if err := b.Policy().SetDel(a.Name, a.Elem); err != nil {
			return nil, err
		}
		return struct{}{}, nil
	}
}

// setList streams the listing: a dynamic set may hold max_elements
// addresses, more than a single response may carry.
func setList(b Backend) HandlerFunc {
	return func(ctx context.Context, raw json.RawMessage) (any, error) {
		a, err := decodeSetArgs(raw, false)
		if err != nil {
			return nil, err
		}
		es, err := b.Policy().SetList(a.Name)
		if err != nil {
			return nil, err
		}
		now := time.Now()
		return Stream(func(emit func(any) error) error {
			for _, e := range es {
				if err := ctx.Err(); err != nil {
					return err
				}
				if err := emit(setElemFrom(e, now)); err != nil {
					return err
				}
			}
			return nil
		}), nil
	}
}

func setElemFrom(e policy.SetEntry, now time.Time) SetElem {
	out := SetElem{Elem: e.Elem}
	if !e.Expires.IsZero() {
		exp := e.Expires
		out.Expires = &exp
		// At least 1 ms: a listed element is live, and 0 would read as
		// "static" after omitempty.
		out.RemainingMS = max(exp.Sub(now).Milliseconds(), 1)
	}
	return out
}
