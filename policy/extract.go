package policy

import "github.com/tungate/tungate/policy/l7"

// L7Extractor reads the first client bytes of a pending flow until the
// fields its rules need are known: a TLS ClientHello's server_name or an
// HTTP/1.x request head, whichever the stream turns out to carry. It
// stops after [inspect] max_bytes. The caller enforces [inspect] timeout
// and then calls Fields whether or not Feed said done. One per flow; not
// safe for concurrent use.
type L7Extractor struct {
	max      int
	fed      int
	tls      l7.TLSState
	http     l7.HTTPState
	tryTLS   bool
	tryHTTP  bool
	done     bool
	complete bool // a parser finished, or every parser gave up: not Incomplete
	fields   L7Fields
	buf      []byte // backs the copied HTTP fields
}

// NewL7Extractor returns the extractor for a verdict Pending on tls/http
// fields, nil for any other verdict (not pending, or per-query DNS).
func (p *Policy) NewL7Extractor(v Verdict) *L7Extractor {
	if !v.Pending || v.Need&(NeedSNI|NeedHTTP) == 0 || v.Need&NeedDNS != 0 {
		return nil
	}
	return &L7Extractor{
		max:     int(p.inspect.MaxBytes),
		tryTLS:  v.Need&NeedSNI != 0,
		tryHTTP: v.Need&NeedHTTP != 0,
	}
}

// Feed consumes the next client bytes, in order, and reports whether the
// extractor is done: a field is known, the stream is neither TLS nor HTTP,
// or max_bytes were fed. Bytes past that are ignored. Buffer everything
// fed: the caller replays it upstream once Resume allows the flow.
func (x *L7Extractor) Feed(data []byte) (done bool) {
	if x.done {
		return true
	}
	if rem := x.max - x.fed; len(data) > rem {
		data = data[:rem]
	}
	x.fed += len(data)
	if x.tryTLS {
		switch x.tls.Feed(data) {
		case l7.Done:
			x.fields = L7Fields{Proto: L7TLS, SNI: x.tls.SNI()}
			return x.finish(true)
		case l7.NotTLS:
			x.tryTLS = false
		}
	}
	if x.tryHTTP {
		_, ev := x.http.Feed(data)
		switch ev.Kind {
		case l7.HTTPRequest:
			x.buf = append(append(append(x.buf[:0], ev.Host...), ev.Method...), ev.Path...)
			h, m := len(ev.Host), len(ev.Host)+len(ev.Method)
			x.fields = L7Fields{Proto: L7HTTP, Host: x.buf[:h:h], Method: x.buf[h:m:m], Path: x.buf[m:]}
			return x.finish(true)
		case l7.NotHTTP, l7.HTTPError:
			x.tryHTTP = false
		}
	}
	if !x.tryTLS && !x.tryHTTP {
		return x.finish(true) // another protocol: the fields are absent
	}
	if x.fed >= x.max {
		return x.finish(false)
	}
	return false
}

func (x *L7Extractor) finish(complete bool) bool {
	x.done, x.complete = true, complete
	return true
}

// Fed is how many bytes Feed took into account (at most max_bytes).
func (x *L7Extractor) Fed() int { return x.fed }

// Fields returns what was extracted, for Resume. Called before Feed said
// done (the timeout), or when max_bytes ran out, the fields are absent
// and Incomplete is set if any byte arrived; a client that sent nothing
// (a server-first protocol) just has absent fields. Valid until the
// extractor is dropped.
func (x *L7Extractor) Fields() *L7Fields {
	if !x.complete {
		x.fields = L7Fields{Incomplete: x.fed > 0}
	}
	return &x.fields
}
