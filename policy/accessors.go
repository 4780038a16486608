package policy

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tungate/tungate/internal/cfgerr"
	"github.com/tungate/tungate/internal/units"
)

// Defaults of [inspect] and [log] (docs/configuration.md).
const (
	DefaultInspectMaxBytes    units.Size     = 16384
	DefaultInspectTimeout     units.Duration = units.Duration(500 * time.Millisecond)
	DefaultInspectStreamDepth units.Size     = 1 << 20
	DefaultLogLevel                          = "info"
	DefaultLogDecisions                      = "drops"
	DefaultLogRate                           = "20/s"
)

func compileInspect(c InspectConfig, errs *cfgerr.List) InspectConfig {
	if c.MaxBytes < 0 {
		errs.Addf("max_bytes must not be negative", "inspect", "max_bytes")
	}
	if c.Timeout < 0 {
		errs.Addf("timeout must not be negative", "inspect", "timeout")
	}
	if c.StreamDepth < 0 {
		errs.Addf("stream_depth must not be negative", "inspect", "stream_depth")
	}
	switch c.OnIncomplete {
	case "":
		c.OnIncomplete = "drop"
	case "no-match", "drop":
	default:
		errs.Addf(fmt.Sprintf("unknown on_incomplete %q (want no-match or drop)", c.OnIncomplete), "inspect", "on_incomplete")
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultInspectMaxBytes
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultInspectTimeout
	}
	if c.StreamDepth == 0 && !c.StreamDepthSet {
		c.StreamDepth = DefaultInspectStreamDepth
	}
	return c
}

func compileLog(c LogConfig, errs *cfgerr.List) (LogConfig, decisions) {
	if c.Level == "" {
		c.Level = DefaultLogLevel
	}
	if c.Decisions == "" {
		c.Decisions = DefaultLogDecisions
	}
	if c.Rate == "" {
		c.Rate = DefaultLogRate
	}
	switch c.Level {
	case "debug", "info", "warn", "error":
	default:
		errs.Addf(fmt.Sprintf("unknown level %q (want debug, info, warn or error)", c.Level), "log", "level")
	}
	var d decisions
	switch c.Decisions {
	case "drops":
		d = decisionsDrops
	case "none":
		d = decisionsNone
	case "all":
		d = decisionsAll
	default:
		errs.Addf(fmt.Sprintf("unknown decisions %q (want none, drops or all)", c.Decisions), "log", "decisions")
	}
	if _, err := ParseRate(c.Rate); err != nil {
		errs.Addf(err.Error(), "log", "rate")
	}
	if c.Burst < 0 {
		errs.Addf("burst must not be negative", "log", "burst")
	}
	return c, d
}

// logBudget resolves [log] rate and burst; burst defaults to the rate per
// second (at least 1), which is what the decision log did before burst
// was configurable.
func logBudget(c LogConfig) (float64, int) {
	r, err := ParseRate(c.Rate)
	if err != nil {
		return 0, 0
	}
	b := c.Burst
	if b <= 0 {
		b = max(int(r), 1)
	}
	return r, b
}

func compileReject(c RejectConfig, errs *cfgerr.List) float64 {
	if c.MaxRate == "" {
		return 0
	}
	r, err := ParseRate(c.MaxRate)
	if err != nil {
		errs.Addf(err.Error(), "reject", "max_rate")
	}
	return r
}

func compileReload(c ReloadConfig, errs *cfgerr.List) bool {
	switch c.ExistingFlows {
	case "", "keep":
		return false
	case "recheck":
		return true
	}
	errs.Addf(fmt.Sprintf("unknown existing_flows %q (want keep or recheck)", c.ExistingFlows), "reload", "existing_flows")
	return false
}

// LogRate is the decision-log budget: lines per second and burst.
func (p *Policy) LogRate() (perSecond float64, burst int) { return p.logRate, p.logBurst }

// RejectMaxRate is [reject] max_rate in rejects per second, 0 when
// unlimited. Above it the stack answers a reject with a drop (and counts
// it); the burst is one second's worth, at least 1.
func (p *Policy) RejectMaxRate() float64 { return p.rejectMaxRate }

// RecheckExistingFlows reports [reload] existing_flows = "recheck": after a
// reload the stack decides every tracked flow again (Flow.CtState =
// CtEstablished) and tears down those no longer allowed.
func (p *Policy) RecheckExistingFlows() bool { return p.recheck }

// HasInvalidRules reports whether some rule lists ct_state "invalid", so
// the stack must call Decide for invalid packets (CtState = CtInvalid)
// instead of applying InvalidAction directly.
func (p *Policy) HasInvalidRules() bool { return p.invalidRules }

// ParseRate parses a budget written "N/s", "N/m" or "N/h" (N a positive
// integer) into events per second.
func ParseRate(s string) (perSecond float64, err error) {
	n, unit, ok := strings.Cut(strings.TrimSpace(s), "/")
	var div float64
	switch unit {
	case "s":
		div = 1
	case "m":
		div = 60
	case "h":
		div = 3600
	default:
		ok = false
	}
	v, perr := strconv.ParseUint(n, 10, 32)
	if !ok || perr != nil || v == 0 || n[0] == '+' {
		return 0, fmt.Errorf("invalid rate %q (want \"N/s\", \"N/m\" or \"N/h\" with N > 0)", s)
	}
	return float64(v) / div, nil
}

// Inspect returns [inspect] with defaults applied.
func (p *Policy) Inspect() InspectConfig { return p.inspect }

// Log returns [log] with defaults applied.
func (p *Policy) Log() LogConfig { return p.log }

// DefaultAction is defaults.policy.
func (p *Policy) DefaultAction() Action { return p.defAction }

// InvalidAction is defaults.invalid (drop unless configured).
func (p *Policy) InvalidAction() Action { return p.invalid }

// Mode is defaults.mode.
func (p *Policy) Mode() Mode { return p.mode }

// Len is the number of rules.
func (p *Policy) Len() int { return len(p.rules) }

// RuleName returns the name interned as id by any policy compiled in this
// process, "" for 0 (the default policy).
func (p *Policy) RuleName(id uint32) string { return lookupName(id) }

// RuleNameAt returns the name of rule index i, "default" for -1 and "" when
// i is out of range.
func (p *Policy) RuleNameAt(i int) string {
	if i == -1 {
		return "default"
	}
	if i < 0 || i >= len(p.rules) {
		return ""
	}
	return p.rules[i].name
}

// Domains returns the elements of a domain set (lower case, no trailing
// dot) and whether the set exists with type domain. The slice is shared;
// do not modify it.
func (p *Policy) Domains(set string) ([]string, bool) {
	ns, ok := p.sets[set]
	if !ok || ns.domains == nil {
		return nil, false
	}
	return ns.domains.list, true
}
