package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/tungate/tungate/internal/cfgerr"
)

// namedSet is a compiled [sets.NAME]; exactly one of the value fields is
// used, according to typ (dyn for dynamic sets). A set whose type was
// invalid has typ "" and is kept so references to it do not produce a
// second error.
type namedSet struct {
	typ     string
	size    int // elements as configured (before merging)
	prefix  *prefixSet
	ports   *portSet
	domains *domainSet
	dyn     *dynSet
}

// setElems collects a set's elements and parses them with the type's
// parser, reporting each bad one at its config key or set file position.
type setElems[T any] struct {
	parse func(any) (T, error)
	out   []T
}

func (p *Policy) compileSets(sets map[string]SetConfig, dir string, errs *cfgerr.List) {
	p.sets = make(map[string]*namedSet, len(sets))
	names := make([]string, 0, len(sets))
	for n := range sets {
		names = append(names, n)
	}
	slices.Sort(names) // errors in a stable order
	for _, name := range names {
		sc := sets[name]
		if !validSetName(name) {
			errs.Addf(fmt.Sprintf("invalid set name %q (use letters, digits, '_' and '-')", name), "sets", name)
		}
		ns := &namedSet{}
		p.sets[name] = ns
		switch sc.Type {
		case "cidr", "port", "domain":
		case "":
			errs.Addf("type is required (cidr, port or domain)", "sets", name, "type")
			continue
		default:
			errs.Addf(fmt.Sprintf("unknown set type %q (want cidr, port or domain)", sc.Type), "sets", name, "type")
			continue
		}
		if sc.Dynamic {
			compileDynamic(ns, name, &sc, errs)
			continue
		}
		if sc.Timeout != 0 {
			errs.Addf("timeout needs dynamic = true", "sets", name, "timeout")
		}
		if sc.MaxElements != 0 {
			errs.Addf("max_elements needs dynamic = true", "sets", name, "max_elements")
		}
		ns.typ = sc.Type
		switch sc.Type {
		case "cidr":
			e := setElems[netip.Prefix]{parse: parsePrefixElem}
			ns.size = e.collect(&sc, name, dir, errs)
			ns.prefix = newPrefixSet(e.out)
		case "port":
			e := setElems[portRange]{parse: parsePortElem}
			ns.size = e.collect(&sc, name, dir, errs)
			ns.ports = newPortSet(e.out)
		case "domain":
			e := setElems[string]{parse: parseDomainElem}
			ns.size = e.collect(&sc, name, dir, errs)
			ns.domains = newDomainSet(e.out)
		}
	}
}

func compileDynamic(ns *namedSet, name string, sc *SetConfig, errs *cfgerr.List) {
	ok := true
	if sc.Type != "cidr" {
		errs.Addf(`dynamic sets must have type "cidr" (they hold addresses)`, "sets", name, "dynamic")
		ok = false
	}
	if len(sc.Elements) > 0 {
		errs.Addf("a dynamic set starts empty: elements are not allowed", "sets", name, "elements")
	}
	if len(sc.Files) > 0 {
		errs.Addf("a dynamic set starts empty: files are not allowed", "sets", name, "files")
	}
	if sc.Timeout <= 0 {
		errs.Addf(`timeout is required for a dynamic set and must be positive (e.g. "1h")`, "sets", name, "timeout")
		ok = false
	}
	if sc.MaxElements <= 0 {
		errs.Addf("max_elements is required for a dynamic set and must be positive", "sets", name, "max_elements")
		ok = false
	}
	if ok {
		ns.typ = "cidr"
		ns.dyn = newDynSet(time.Duration(sc.Timeout), sc.MaxElements)
	}
}

// collect parses inline elements then file elements, returning how many
// were configured.
func (e *setElems[T]) collect(sc *SetConfig, name, dir string, errs *cfgerr.List) int {
	n := 0
	for j, v := range sc.Elements {
		n++
		x, err := e.parse(v)
		if err != nil {
			errs.Addf(err.Error(), "sets", name, "elements", j)
			continue
		}
		e.out = append(e.out, x)
	}
	for j, f := range sc.Files {
		path := resolveSetFile(dir, f)
		lines, err := readSetFile(path)
		if err != nil {
			errs.Addf(fmt.Sprintf("cannot read set file: %v", err), "sets", name, "files", j)
			continue
		}
		for _, l := range lines {
			n++
			var v any = l.text
			if _, isPort := any(e.parse).(func(any) (portRange, error)); isPort {
				if i, err := strconv.ParseInt(l.text, 10, 64); err == nil {
					v = i // "70000" is then reported as out of range, like in TOML
				}
			}
			x, err := e.parse(v)
			if err != nil {
				errs.Addf(err.Error(), "sets", name, "files", j, filePosMarker, path, l.line, l.col)
				continue
			}
			e.out = append(e.out, x)
		}
	}
	return n
}
