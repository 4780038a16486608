package configs

// The documentation's examples are checked here, so README.md and
// docs/*.md cannot drift from what tungate accepts:
//
//   - A ```toml block is a whole configuration. It must load exactly as
//     `tungate check` loads a file (config.Parse: decode, validate,
//     compile), with set files looked up in this directory (configs/sets/).
//   - A ```toml fragment block is part of a configuration. It is loaded
//     with docFragmentBase appended: [defaults] and the sets the examples
//     refer to (lan, web_ports, ban, ads), each only when the fragment does
//     not declare it itself. Keys outside a table are therefore top-level
//     keys and fail, as they would in a file.
//   - Any other word after toml fails, so no TOML example goes unchecked.
//   - Every `tungate WORD` in a fenced block other than TOML, and in an
//     inline code span, must name a subcommand cmd/tungate dispatches.
//   - The list of keys configs/example.toml leaves out, in
//     docs/configuration.md, must match example.toml and the config types.
//
// A failure names the file and line of the block (and of the error in it).

import (
	"bufio"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/tungate/tungate/internal/config"
	"github.com/tungate/tungate/policy"
)

// docFiles are the Markdown files whose examples are checked, relative to
// this directory.
func docFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	return append([]string{"../README.md"}, files...)
}

// docFragmentBase completes a ```toml fragment: one table per entry, added
// when the fragment lacks it.
var docFragmentBase = []struct {
	table []string // "defaults" or "sets", "NAME"
	text  string
}{
	{[]string{"defaults"}, "[defaults]\npolicy = \"drop\"\n"},
	{[]string{"sets", "lan"}, "[sets.lan]\ntype = \"cidr\"\nelements = [\"198.18.1.0/24\", \"2001:2:0:1::/64\"]\n"},
	{[]string{"sets", "web_ports"}, "[sets.web_ports]\ntype = \"port\"\nelements = [80, 443]\n"},
	{[]string{"sets", "ban"}, "[sets.ban]\ntype = \"cidr\"\ndynamic = true\ntimeout = \"1h\"\nmax_elements = 1024\n"},
	{[]string{"sets", "ads"}, "[sets.ads]\ntype = \"domain\"\nelements = [\"ads.example\"]\n"},
}

// mdBlock is one fenced code block of a Markdown file.
type mdBlock struct {
	file  string
	line  int // of the opening fence
	info  string
	lines []string
}

func (b mdBlock) text() string { return strings.Join(b.lines, "\n") + "\n" }

var fenceRE = regexp.MustCompile("^( *)(`{3,}|~{3,})[ \t]*(.*)$")

// readMarkdown returns a file's fenced blocks and, for the text outside
// them, each line with its number.
func readMarkdown(t *testing.T, path string) (blocks []mdBlock, prose map[int]string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	name := filepath.Clean(strings.TrimPrefix(path, "../"))
	prose = make(map[int]string)
	var cur *mdBlock
	var fence string
	indent := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if cur == nil {
			m := fenceRE.FindStringSubmatch(line)
			if m == nil || (m[2][0] == '`' && strings.Contains(m[3], "`")) {
				prose[n] = line
				continue
			}
			indent = len(m[1])
			fence = m[2]
			cur = &mdBlock{file: name, line: n, info: strings.TrimSpace(m[3])}
			continue
		}
		if s := strings.TrimSpace(line); strings.HasPrefix(s, fence) && strings.Trim(s, fence[:1]) == "" {
			blocks = append(blocks, *cur)
			cur = nil
			continue
		}
		// Content lines lose the indentation of their fence (list items).
		cut := 0
		for cut < indent && cut < len(line) && line[cut] == ' ' {
			cut++
		}
		cur.lines = append(cur.lines, line[cut:])
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur != nil {
		t.Errorf("%s:%d: code block is never closed", cur.file, cur.line)
	}
	return blocks, prose
}

// TestDocsTOMLExamples loads every TOML example of the docs.
func TestDocsTOMLExamples(t *testing.T) {
	checked := 0
	for _, path := range docFiles(t) {
		blocks, _ := readMarkdown(t, path)
		for _, b := range blocks {
			words := strings.Fields(b.info)
			if len(words) == 0 || words[0] != "toml" {
				continue
			}
			checked++
			switch {
			case len(words) == 1:
				checkTOML(t, b, false)
			case len(words) == 2 && words[1] == "fragment":
				checkTOML(t, b, true)
			default:
				t.Errorf("%s:%d: unknown TOML block kind %q (want ```toml or ```toml fragment)", b.file, b.line, b.info)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no TOML examples found in README.md and docs/*.md")
	}
	t.Logf("%d TOML examples checked", checked)
}

// checkTOML loads one block the way `tungate check` loads a file.
func checkTOML(t *testing.T, b mdBlock, fragment bool) {
	t.Helper()
	// The block's first line is the line after its fence.
	first := b.line + 1
	text := b.text()
	if fragment {
		var top map[string]any
		if _, err := toml.Decode(text, &top); err != nil {
			// Not TOML at all: let the loader say where.
			reportLoad(t, b, first, len(b.lines), text)
			return
		}
		for _, base := range docFragmentBase {
			if !hasTable(top, base.table) {
				text += "\n" + base.text
			}
		}
	}
	reportLoad(t, b, first, len(b.lines), text)
}

// docExamplePath names a block to the loader. It lies in this directory,
// so relative set files are those of configs/sets/.
const docExamplePath = "docs-example.toml"

func reportLoad(t *testing.T, b mdBlock, first, n int, text string) {
	t.Helper()
	f, err := config.Parse(docExamplePath, []byte(text))
	if err == nil {
		if f.Compiled == nil {
			t.Errorf("%s:%d: loaded without a compiled policy", b.file, b.line)
		}
		return
	}
	var errs config.Errors
	if !errors.As(err, &errs) {
		t.Errorf("%s:%d: example does not load: %v", b.file, b.line, err)
		return
	}
	for _, e := range errs {
		switch {
		case e.File != docExamplePath:
			t.Errorf("%s:%d: example does not load: %v", b.file, b.line, e)
		case e.Line <= n:
			t.Errorf("%s:%d:%d: example (block at line %d) does not load: %s", b.file, first+e.Line-1, e.Col, b.line, e.Msg)
		default:
			t.Errorf("%s:%d: example does not load with the fragment base appended (base line %d): %s", b.file, b.line, e.Line-n, e.Msg)
		}
	}
}

func hasTable(top map[string]any, path []string) bool {
	var v any = top
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return false
		}
		if v, ok = m[k]; !ok {
			return false
		}
	}
	return true
}

// TestDocsSubcommands checks that every `tungate WORD` in the docs' command
// examples names a subcommand of cmd/tungate.
func TestDocsSubcommands(t *testing.T) {
	known := tungateSubcommands(t)
	// tungate, then blanks, then a word; "tungate0", "tungate:" and
	// "/etc/tungate/tungate.toml" do not match.
	cmdRE := regexp.MustCompile("(?:^|[ \t;&|(`$/])tungate[ \t]+([a-z][a-z0-9-]*)")
	spanRE := regexp.MustCompile("`([^`]+)`")
	check := func(file string, line int, s string) {
		for _, m := range cmdRE.FindAllStringSubmatch(s, -1) {
			if !known[m[1]] {
				t.Errorf("%s:%d: %q is not a tungate subcommand (cmd/tungate knows %s)", file, line, "tungate "+m[1], strings.Join(sortedKeys(known), ", "))
			}
		}
	}
	seen := 0
	for _, path := range docFiles(t) {
		blocks, prose := readMarkdown(t, path)
		name := filepath.Clean(strings.TrimPrefix(path, "../"))
		for _, b := range blocks {
			if w := strings.Fields(b.info); len(w) > 0 && (w[0] == "toml" || w[0] == "json") {
				continue
			}
			for i, l := range b.lines {
				// Shell comments are prose.
				if c := strings.Index(l, "#"); c == 0 || c > 0 && (l[c-1] == ' ' || l[c-1] == '\t') {
					l = l[:c]
				}
				check(b.file, b.line+1+i, l)
				seen++
			}
		}
		for n, l := range prose {
			for _, m := range spanRE.FindAllStringSubmatch(l, -1) {
				if strings.HasPrefix(m[1], "tungate ") {
					check(name, n, m[1])
				}
			}
		}
	}
	if seen == 0 {
		t.Fatal("no command examples found")
	}
}

// tungateSubcommands reads the words cmd/tungate's main dispatches on: the
// cases of its switch on os.Args[1].
func tungateSubcommands(t *testing.T) map[string]bool {
	t.Helper()
	files, err := filepath.Glob("../cmd/tungate/*.go")
	if err != nil {
		t.Fatal(err)
	}
	known := make(map[string]bool)
	fset := token.NewFileSet()
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			sw, ok := n.(*ast.SwitchStmt)
			if !ok || !isOsArgs1(sw.Tag) {
				return true
			}
			for _, st := range sw.Body.List {
				for _, e := range st.(*ast.CaseClause).List {
					if lit, ok := e.(*ast.BasicLit); ok && lit.Kind == token.STRING {
						if s, err := strconv.Unquote(lit.Value); err == nil {
							known[s] = true
						}
					}
				}
			}
			return true
		})
	}
	if len(known) == 0 {
		t.Fatal("found no `switch os.Args[1]` with string cases in cmd/tungate: update tungateSubcommands to where the subcommands are dispatched now")
	}
	return known
}

func isOsArgs1(e ast.Expr) bool {
	ix, ok := e.(*ast.IndexExpr)
	if !ok {
		return false
	}
	sel, ok := ix.X.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != "Args" {
		return false
	}
	if id, ok := sel.X.(*ast.Ident); !ok || id.Name != "os" {
		return false
	}
	lit, ok := ix.Index.(*ast.BasicLit)
	return ok && lit.Value == "1"
}

func sortedKeys(m map[string]bool) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

var (
	stringMatchType     = reflect.TypeFor[policy.StringMatch]()
	unmarshalerType     = reflect.TypeFor[toml.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[interface{ UnmarshalText([]byte) error }]()
)

// keyPaths adds the key paths of type t to out: every leaf key, written
// from the file's root ("tun.offload", "rule.payload.hex", "sets.*.type"),
// and every L7 field ("rule.tls.sni"), whose matcher keys are written
// "rule.*.exact" whichever field they are in. With v (a decoded TOML
// value) only the keys present in v are added.
func keyPaths(t reflect.Type, v any, path string, out map[string]bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	pt := reflect.PointerTo(t)
	if pt.Implements(unmarshalerType) || pt.Implements(textUnmarshalerType) {
		out[path] = true
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		prefix := path
		if t == stringMatchType {
			out[path] = true
			prefix = "rule.*"
		}
		var m map[string]any
		if v != nil {
			var ok bool
			if m, ok = v.(map[string]any); !ok {
				return
			}
		}
		for i := range t.NumField() {
			sf := t.Field(i)
			name, _, _ := strings.Cut(sf.Tag.Get("toml"), ",")
			if !sf.IsExported() || name == "-" || name == "" {
				continue
			}
			var cv any
			if m != nil {
				var ok bool
				if cv, ok = m[name]; !ok {
					continue
				}
			}
			p := name
			if prefix != "" {
				p = prefix + "." + name
			}
			keyPaths(sf.Type, cv, p, out)
		}
	case reflect.Slice:
		et := t.Elem()
		for et.Kind() == reflect.Pointer {
			et = et.Elem()
		}
		if et.Kind() != reflect.Struct {
			out[path] = true
			return
		}
		if v == nil {
			keyPaths(et, nil, path, out)
			return
		}
		switch a := v.(type) {
		case []map[string]any:
			for _, e := range a {
				keyPaths(et, e, path, out)
			}
		case []any:
			for _, e := range a {
				keyPaths(et, e, path, out)
			}
		}
	case reflect.Map:
		if v == nil {
			keyPaths(t.Elem(), nil, path+".*", out)
			return
		}
		m, _ := v.(map[string]any)
		for _, e := range m {
			keyPaths(t.Elem(), e, path+".*", out)
		}
	default:
		out[path] = true
	}
}

// TestDocsExampleOmits keeps docs/configuration.md's list of the keys
// configs/example.toml leaves out true.
func TestDocsExampleOmits(t *testing.T) {
	const (
		doc   = "../docs/configuration.md"
		begin = "<!-- example-omits -->"
		end   = "<!-- /example-omits -->"
	)
	all := make(map[string]bool)
	keyPaths(reflect.TypeFor[config.Raw](), nil, "", all)
	var top map[string]any
	if _, err := toml.DecodeFile("example.toml", &top); err != nil {
		t.Fatal(err)
	}
	used := make(map[string]bool)
	keyPaths(reflect.TypeFor[config.Raw](), top, "", used)
	for k := range used {
		if !all[k] {
			t.Errorf("example.toml has %s, which the config types lack", k)
		}
	}

	data, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatalf("%s: no list between %s and %s", doc, begin, end)
	}
	listLine := 1 + strings.Count(s[:i], "\n")
	listed := make(map[string]bool)
	for _, m := range regexp.MustCompile("`([a-z_*.]+)`").FindAllStringSubmatch(s[i:j], -1) {
		listed[m[1]] = true
	}
	for _, k := range sortedKeys(all) {
		switch {
		case used[k] && listed[k]:
			t.Errorf("docs/configuration.md:%d: lists %s as missing from example.toml, which uses it", listLine, k)
		case !used[k] && !listed[k]:
			t.Errorf("docs/configuration.md:%d: example.toml does not use %s; add it to the list", listLine, k)
		}
	}
	for _, k := range sortedKeys(listed) {
		if !all[k] {
			t.Errorf("docs/configuration.md:%d: lists %s, which is not a configuration key", listLine, k)
		}
	}
	if t.Failed() {
		var missing []string
		for _, k := range sortedKeys(all) {
			if !used[k] {
				missing = append(missing, k)
			}
		}
		t.Logf("keys example.toml does not use: %s", fmt.Sprint(missing))
	}
}
