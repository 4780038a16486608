package control

import (
	"encoding/json"
	"testing"
)

// FuzzSetArgs feeds arbitrary JSON to the set operations' argument
// parsing: it must never panic, and whatever it accepts names a set, has
// an element when one is needed and a timeout that is zero (the set's
// default) only when none was given.
func FuzzSetArgs(f *testing.F) {
	f.Add([]byte(`{"name":"ban","elem":"198.18.1.2","timeout":"10m"}`), true)
	f.Add([]byte(`{"name":"ban","elem":"2001:2::1"}`), true)
	f.Add([]byte(`{"name":"lan"}`), false)
	f.Add([]byte(`{"name":"ban","elem":"x","timeout":"-1s"}`), true)
	f.Add([]byte(`[1]`), false)
	f.Fuzz(func(t *testing.T, raw []byte, needElem bool) {
		a, err := decodeSetArgs(json.RawMessage(raw), needElem)
		if err != nil {
			return
		}
		if a.Name == "" || (needElem && a.Elem == "") {
			t.Fatalf("accepted %+v (needElem %v)", a, needElem)
		}
		d, err := a.timeout()
		if err != nil {
			return
		}
		if d < 0 || (d == 0) != (a.Timeout == "") {
			t.Fatalf("timeout %q became %v", a.Timeout, d)
		}
	})
}
