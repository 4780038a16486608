package config

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// Shapes the package sections may grow into: unknown keys must be found
// at any depth, with the index of the table they are in.
type inner struct {
	Suffix []string `toml:"suffix"`
}

type outer struct {
	Name  string               `toml:"name"`
	TLS   *struct{ SNI inner } `toml:"tls"`
	ByKey map[string]*inner    `toml:"by_key"`
	List  []*inner             `toml:"list"`
}

func TestDecoderDeepUnknownKeys(t *testing.T) {
	src := `[[r]]
name = "a"
tls.SNI = { suffix = ["x"] }

[[r]]
name = "b"
tls.SNI = { suffix = ["y"], sufix = ["z"] }
by_key.k = { suffix = [], nope = 1 }
list = [{ suffix = ["q"] }, { extra = true }]
`
	var top map[string]toml.Primitive
	md, err := toml.Decode(src, &top)
	if err != nil {
		t.Fatal(err)
	}
	d := &decoder{md: &md, idx: buildIndex([]byte(src))}
	var v struct {
		R []outer `toml:"r"`
	}
	d.fields(reflect.ValueOf(&v).Elem(), top, nil)
	if len(v.R) != 2 || v.R[1].TLS == nil || !slices.Equal(v.R[1].TLS.SNI.Suffix, []string{"y"}) || v.R[1].ByKey["k"] == nil || len(v.R[1].List) != 2 {
		t.Fatalf("decoded %+v", v)
	}
	var got []string
	for _, p := range d.problems {
		if p.kind != unknownKey {
			t.Errorf("unexpected problem %+v", p)
		}
		got = append(got, strings.Join(p.path, "."))
	}
	slices.Sort(got)
	want := []string{"r.1.by_key.k.nope", "r.1.list.1.extra", "r.1.tls.SNI.sufix"}
	if !slices.Equal(got, want) {
		t.Errorf("unknown keys %q, want %q", got, want)
	}
	errs := d.errors("x.toml", nil)
	for i, marker := range []string{"sufix", "nope", "extra"} {
		if p := posOf(t, src, marker, 0); errs[i].Pos != p {
			t.Errorf("%s at %v, want %v (%v)", marker, errs[i].Pos, p, errs[i])
		}
	}
}
