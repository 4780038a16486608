package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/tungate/tungate/internal/cfgerr"
	"github.com/tungate/tungate/policy"
)

// Load reads and validates the configuration file at path. On failure the
// error is Errors: every problem found, one "FILE:LINE:COL: message" per
// line.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, Errors{{File: path, Pos: Pos{1, 1}, Msg: "cannot read: " + err.Error()}}
	}
	return Parse(path, data)
}

// Parse is Load on text already read; path only names the file in errors.
func Parse(path string, data []byte) (*File, error) {
	var top map[string]toml.Primitive
	md, err := toml.Decode(string(data), &top)
	if err != nil {
		return nil, Errors{syntaxError(path, data, err)}
	}
	d := &decoder{md: &md, idx: buildIndex(data)}
	var r Raw
	d.fields(reflect.ValueOf(&r).Elem(), top, nil)

	// An explicit stream_depth = 0 means the whole stream, unlike no key.
	r.Inspect.StreamDepthSet = md.IsDefined("inspect", "stream_depth")

	f := &File{
		Tun:       r.Tun,
		Routing:   r.Routing,
		Egress:    r.Egress,
		Stack:     r.Stack,
		Conntrack: r.Conntrack,
		Fragments: r.Fragments,
		Control:   r.Control,
		Policy: policy.Config{
			Defaults: r.Defaults,
			Sets:     r.Sets,
			Rules:    r.Rules,
			Inspect:  r.Inspect,
			Log:      r.Log,
			Reject:   r.Reject,
			Reload:   r.Reload,
			// Set files are read relative to the file that names them,
			// and again on every Load, so a reload picks up their edits.
			Dir: filepath.Dir(path),
		},
	}
	d.section("tun", &f.Tun)
	d.section("routing", &f.Routing)
	d.section("egress", &f.Egress)
	d.section("stack", &f.Stack)
	d.section("conntrack", &f.Conntrack)
	d.section("fragments", &f.Fragments)
	d.section("control", &f.Control)
	f.Compiled = d.compile(f.Policy)

	if errs := d.errors(path, f.Policy.Rules); len(errs) > 0 {
		return nil, errs
	}
	return f, nil
}

func syntaxError(path string, data []byte, err error) *Error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		p := Pos{pe.Position.Line, pe.Position.Col}
		// The parser counts a line once it has read its newline, so an
		// error at a newline (an unclosed "[defaults") is reported on the
		// next line; the byte offset it gives is where the error is.
		if at := pe.Position.Start; at >= 0 && at <= len(data) {
			p.Line = 1 + bytes.Count(data[:at], []byte("\n"))
			p.Col = at - bytes.LastIndexByte(data[:at], '\n')
		}
		if p.Line < 1 {
			p = Pos{1, 1}
		}
		if p.Col < 1 {
			p.Col = 1
		}
		return &Error{File: path, Pos: p, Msg: oneLine(pe.Message)}
	}
	return &Error{File: path, Pos: Pos{1, 1}, Msg: oneLine(cleanMsg(err.Error()))}
}

type problemKind int

const (
	unknownKey problemKind = iota
	badValue               // the value does not decode into the field's type
	invalid                // decoded, but the owning package rejects it
)

type problem struct {
	kind problemKind
	path []string
	msg  string
	at   *Error // set when the problem is in another file (a set file)
}

// decoder walks the file one key at a time instead of decoding it in one
// go, because the toml library stops at the first type error and names
// array-of-tables keys without their index. Here every key's full path is
// known, so each problem lands on its own line.
type decoder struct {
	md       *toml.MetaData
	idx      *index
	problems []problem
}

func (d *decoder) add(kind problemKind, path []string, msg string) {
	d.problems = append(d.problems, problem{kind: kind, path: path, msg: msg})
}

var (
	unmarshalerType     = reflect.TypeFor[toml.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[interface{ UnmarshalText([]byte) error }]()
)

// fields decodes the keys of one table into struct rv; keys without a
// field are reported, not ignored.
func (d *decoder) fields(rv reflect.Value, m map[string]toml.Primitive, path []string) {
	for key, prim := range m {
		p := appendPath(path, key)
		fv, ok := fieldByKey(rv, key)
		if !ok {
			d.add(unknownKey, p, "")
			continue
		}
		d.value(fv, prim, p)
	}
}

func (d *decoder) value(rv reflect.Value, prim toml.Primitive, path []string) {
	t := rv.Type()
	pt := reflect.PointerTo(t)
	custom := pt.Implements(unmarshalerType) || pt.Implements(textUnmarshalerType)
	switch {
	case !custom && t.Kind() == reflect.Pointer && byKey(t.Elem()):
		nv := reflect.New(t.Elem())
		d.value(nv.Elem(), prim, path)
		rv.Set(nv)
	case !custom && t.Kind() == reflect.Struct:
		m, ok := d.table(prim, path)
		if ok {
			d.fields(rv, m, path)
		}
	case !custom && t.Kind() == reflect.Slice && byKey(t.Elem()):
		var a []toml.Primitive
		if err := d.md.PrimitiveDecode(prim, &a); err != nil {
			d.add(badValue, path, "must be an array of tables")
			return
		}
		s := reflect.MakeSlice(t, len(a), len(a))
		for i := range a {
			d.value(s.Index(i), a[i], appendPath(path, strconv.Itoa(i)))
		}
		rv.Set(s)
	case !custom && t.Kind() == reflect.Map && t.Key().Kind() == reflect.String && byKey(t.Elem()):
		m, ok := d.table(prim, path)
		if !ok {
			return
		}
		mv := reflect.MakeMapWithSize(t, len(m))
		for k, p := range m {
			ev := reflect.New(t.Elem()).Elem()
			d.value(ev, p, appendPath(path, k))
			mv.SetMapIndex(reflect.ValueOf(k).Convert(t.Key()), ev)
		}
		rv.Set(mv)
	default:
		if err := d.md.PrimitiveDecode(prim, rv.Addr().Interface()); err != nil {
			d.add(badValue, path, decodeMsg(err))
		}
	}
}

// table splits a table value into its keys. The type is checked first
// because the toml library quietly decodes a non-table into an empty map.
func (d *decoder) table(prim toml.Primitive, path []string) (map[string]toml.Primitive, bool) {
	var v any
	if err := d.md.PrimitiveDecode(prim, &v); err != nil {
		d.add(badValue, path, decodeMsg(err))
		return nil, false
	}
	if _, ok := v.(map[string]any); !ok {
		d.add(badValue, path, "expected a table, got "+tomlType(fmt.Sprintf("%T", v)))
		return nil, false
	}
	var m map[string]toml.Primitive
	if err := d.md.PrimitiveDecode(prim, &m); err != nil {
		d.add(badValue, path, decodeMsg(err))
		return nil, false
	}
	return m, true
}

// byKey reports whether values of t are decoded key by key: structs (or
// pointers to them) without their own TOML decoding. Anything else is
// handed to the toml library whole, which would drop unknown keys.
func byKey(t reflect.Type) bool {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	pt := reflect.PointerTo(t)
	return t.Kind() == reflect.Struct && !pt.Implements(unmarshalerType) && !pt.Implements(textUnmarshalerType)
}

// fieldByKey finds the field tagged key. Matching is exact: a key that
// differs only in case is a typo worth reporting.
func fieldByKey(rv reflect.Value, key string) (reflect.Value, bool) {
	t := rv.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(sf.Tag.Get("toml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		if name == key {
			return rv.Field(i), true
		}
	}
	return reflect.Value{}, false
}

func appendPath(path []string, key string) []string {
	p := make([]string, len(path), len(path)+1)
	copy(p, path)
	return append(p, key)
}

// section applies a package's defaults and collects its validation errors.
// The packages are written alongside this one, so the methods are found
// by interface rather than named, and keys may come relative to the
// section or with it.
func (d *decoder) section(name string, cfg any) {
	if c, ok := cfg.(interface{ Defaults() }); ok {
		c.Defaults()
	}
	var errs cfgerr.List
	switch c := cfg.(type) {
	case interface{ Validate() cfgerr.List }:
		errs = c.Validate()
	case interface{ Validate() error }:
		errs = asList(c.Validate())
	}
	for _, e := range errs {
		key := e.Key
		if len(key) == 0 || key[0] != name {
			key = append([]string{name}, key...)
		}
		d.add(invalid, key, e.Msg)
	}
}

func (d *decoder) compile(cfg policy.Config) *policy.Policy {
	p, err := policy.Compile(cfg)
	for _, e := range asList(err) {
		if file, line, col, ok := policy.SetFilePos(e.Key); ok {
			d.problems = append(d.problems, problem{kind: invalid, path: e.Key[:4], msg: e.Msg,
				at: &Error{File: file, Pos: Pos{line, col}, Msg: "[sets." + quoteKey(e.Key[1]) + "]: " + oneLine(e.Msg)}})
			continue
		}
		d.add(invalid, e.Key, e.Msg)
	}
	return p
}

// asList turns a package's error into field errors; an error that names
// no key is reported against the whole file.
func asList(err error) cfgerr.List {
	if err == nil {
		return nil
	}
	var l cfgerr.List
	if errors.As(err, &l) {
		return l
	}
	var fe *cfgerr.FieldError
	if errors.As(err, &fe) {
		return cfgerr.List{fe}
	}
	return cfgerr.List{{Msg: err.Error()}}
}

// errors renders the problems. Validation errors on a key whose value
// already failed to decode are dropped: they only echo the first problem.
func (d *decoder) errors(file string, rules []policy.RuleConfig) Errors {
	var out Errors
	for _, p := range d.problems {
		if p.kind == invalid && d.shadowed(p.path) {
			continue
		}
		if p.at != nil {
			out = append(out, p.at)
			continue
		}
		e := &Error{File: file}
		if p.kind == unknownKey {
			e.Pos = d.idx.keyPos(p.path)
		} else {
			e.Pos = d.idx.lookup(p.path)
		}
		e.Msg = oneLine(render(d.md, p, rules))
		out = append(out, e)
	}
	return out.sorted()
}

func (d *decoder) shadowed(path []string) bool {
	for _, q := range d.problems {
		if q.kind == badValue && (hasPrefix(path, q.path) || hasPrefix(q.path, path)) {
			return true
		}
	}
	return false
}

func hasPrefix(path, prefix []string) bool {
	return len(prefix) <= len(path) && slicesEqual(path[:len(prefix)], prefix)
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func render(md *toml.MetaData, p problem, rules []policy.RuleConfig) string {
	if p.kind == unknownKey && len(p.path) == 1 {
		switch md.Type(p.path[0]) {
		case "Hash":
			return "unknown table [" + quoteKey(p.path[0]) + "]"
		case "ArrayHash":
			return "unknown table [[" + quoteKey(p.path[0]) + "]]"
		}
		return fmt.Sprintf("unknown key %q", p.path[0])
	}
	sec, rel := where(p.path, rules)
	if p.kind == unknownKey {
		return fmt.Sprintf("unknown key %q in %s", relKey(rel), sec)
	}
	if len(rel) == 0 {
		if sec == "" {
			return p.msg
		}
		return sec + ": " + p.msg
	}
	return sec + " " + relKey(rel) + ": " + p.msg
}

// where splits a key path into the section a reader looks for ("[tun]",
// `[[rule]] #4 "allow-web"`, "[sets.lan]") and the key inside it. Rules
// are numbered from 1 here, as a person counts them in the file.
func where(path []string, rules []policy.RuleConfig) (string, []string) {
	switch {
	case len(path) == 0:
		return "", nil
	case len(path) >= 2 && path[0] == "sets":
		return "[sets." + quoteKey(path[1]) + "]", path[2:]
	case len(path) >= 2 && isIndex(path[1]):
		n, _ := strconv.Atoi(path[1])
		s := fmt.Sprintf("[[%s]] #%d", quoteKey(path[0]), n+1)
		if path[0] == "rule" && n < len(rules) && rules[n].Name != "" {
			s += fmt.Sprintf(" %q", rules[n].Name)
		}
		return s, path[2:]
	}
	return "[" + quoteKey(path[0]) + "]", path[1:]
}

// relKey writes a key path inside a section: payload[0].contains.
func relKey(rel []string) string {
	var b strings.Builder
	for i, k := range rel {
		switch {
		case isIndex(k):
			b.WriteString("[" + k + "]")
		case i > 0:
			b.WriteString("." + quoteKey(k))
		default:
			b.WriteString(quoteKey(k))
		}
	}
	return b.String()
}

func isIndex(s string) bool {
	if s == "" || len(s) > 9 {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func quoteKey(k string) string {
	if k == "" {
		return `""`
	}
	for i := range len(k) {
		if !isBare(k[i]) {
			return strconv.Quote(k)
		}
	}
	return k
}

var (
	tomlPrefix = regexp.MustCompile(`^toml: (line \d+ )?(\(last key ".*?"\): )?`)
	badType    = regexp.MustCompile(`^incompatible types: TOML value has type (.+); destination has type (.+)$`)
)

func cleanMsg(msg string) string { return tomlPrefix.ReplaceAllString(msg, "") }

// decodeMsg says what was wrong with a value in terms of the file, not of
// Go types.
func decodeMsg(err error) string {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return pe.Message
	}
	msg := cleanMsg(err.Error())
	if m := badType.FindStringSubmatch(msg); m != nil {
		return "expected " + m[2] + ", got " + tomlType(m[1])
	}
	return msg
}

func tomlType(goType string) string {
	switch {
	case goType == "string":
		return "string"
	case goType == "int64":
		return "integer"
	case goType == "float64":
		return "float"
	case goType == "bool":
		return "boolean"
	case strings.HasPrefix(goType, "[]"):
		return "array"
	case strings.HasPrefix(goType, "map["):
		return "table"
	case strings.HasPrefix(goType, "time.") || strings.HasPrefix(goType, "toml."):
		return "date-time"
	}
	return goType
}
