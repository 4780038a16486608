package policy

// Inspector matches the payload rules armed on one flow against its byte
// streams. It is owned by the flow's relay and is not safe for concurrent
// use: feed both directions from one goroutine or serialise the calls.
type Inspector struct {
	pats  []armedPattern // ordered by rule index, so the first hit is the first rule
	depth int64          // bytes scanned per direction; 0 = unlimited
	seen  [2]int64
	done  bool
}

type armedPattern struct {
	pat   *pattern
	state [2]int32 // KMP state per StreamDir
	hit   Hit
}

// NewInspector returns the matcher for the payload rules armed on f: those
// before the deciding rule of v (all rules for the default) whose L3/L4 part
// matches f. It returns nil when nothing is armed, and for a verdict that
// is not allow (the flow will not carry bytes). Under audit, Decide
// returns allow for would-be drops, so their flows are inspected; hits of
// audit-mode rules have Hit.Audit set.
func (p *Policy) NewInspector(f *Flow, v Verdict) *Inspector {
	if v.Action != ActionAllow {
		return nil
	}
	var mi matchIn
	p.prepare(f, &mi)
	var n int
	var idx [8]int32
	armed := idx[:0]
	c := p.candidates(f.Proto, f.DstPort)
	for {
		ri, ok := c.next()
		if !ok {
			break
		}
		if v.Rule >= 0 && int(ri) >= v.Rule {
			break
		}
		r := &p.rules[ri]
		if r.payload == nil || !r.matchL34(&mi) {
			continue
		}
		armed = append(armed, ri)
		n += len(r.payload)
	}
	if n == 0 {
		return nil
	}
	in := &Inspector{pats: make([]armedPattern, 0, n), depth: int64(p.inspect.StreamDepth)}
	for _, ri := range armed {
		r := &p.rules[ri]
		h := Hit{Rule: int(ri), RuleID: r.id, Action: r.action, Audit: r.audit}
		if r.action == ActionReject {
			h.Reject = resolveReject(r.reject, f.Proto)
		}
		for k := range r.payload {
			pt := &r.payload[k]
			h.Pattern = pt.text
			in.pats = append(in.pats, armedPattern{pat: pt, hit: h})
		}
	}
	return in
}

// Feed scans the next bytes of one direction of the stream. It returns the
// first armed rule, in file order, whose pattern completes within data; a
// pattern may have started in earlier calls. Every hit is terminal: allow
// means stop inspecting, drop and reject mean tear the flow down, and later
// calls return (Hit{}, false). Scanning stops per direction after
// stream_depth bytes. Feed allocates nothing.
func (in *Inspector) Feed(dir StreamDir, data []byte) (Hit, bool) {
	if in == nil || in.done || dir > ToClient {
		return Hit{}, false
	}
	if in.depth > 0 {
		rem := in.depth - in.seen[dir]
		if rem <= 0 {
			return Hit{}, false
		}
		if int64(len(data)) > rem {
			data = data[:rem]
		}
	}
	in.seen[dir] += int64(len(data))
	bit := uint8(1) << dir
	for i := range in.pats {
		a := &in.pats[i]
		if a.pat.dirs&bit == 0 {
			continue
		}
		s, ok := a.pat.scan(a.state[dir], data)
		a.state[dir] = s
		if ok {
			in.done = true
			return a.hit, true
		}
	}
	return Hit{}, false
}

// Done reports whether the inspector has hit or has scanned stream_depth
// bytes in both directions, so the caller may stop feeding it.
func (in *Inspector) Done() bool {
	if in == nil || in.done {
		return true
	}
	return in.depth > 0 && in.seen[ToServer] >= in.depth && in.seen[ToClient] >= in.depth
}
