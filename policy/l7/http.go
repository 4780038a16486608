package l7

import (
	"bytes"
	"errors"
)

// MaxHead bounds an HTTP request head (request line and header fields,
// with the terminating empty line); a longer head is an HTTPError.
const MaxHead = 16 << 10

// maxMethod bounds the method token, so that a stream of token bytes
// without a space is told apart from HTTP early.
const maxMethod = 24

// maxChunkLine bounds a chunk-size line including chunk extensions.
const maxChunkLine = 4 << 10

// EventKind says what an HTTPState found.
type EventKind uint8

const (
	HTTPNeedMore EventKind = iota // no complete request head yet; all of data was used
	HTTPRequest                   // a request head; Method, Target, Path and Host are set
	NotHTTP                       // the stream does not start with an HTTP/1.x request
	HTTPError                     // an HTTP stream broke the protocol or a limit (see Err)
)

func (k EventKind) String() string {
	switch k {
	case HTTPNeedMore:
		return "need-more"
	case HTTPRequest:
		return "request"
	case NotHTTP:
		return "not-http"
	case HTTPError:
		return "error"
	}
	return "kind?"
}

// Event is one result of HTTPState.Feed. Its slices point into the data
// passed to Feed or into the HTTPState, are read-only, and are valid until
// the next Feed or Reset.
type Event struct {
	Kind   EventKind
	Method []byte
	Target []byte // the request-target as sent
	// Path is the origin-form target as sent, or for an absolute-form
	// target the part after the authority ("/" when that is empty); "*"
	// for OPTIONS *, and empty for CONNECT.
	Path []byte
	// Host is the absolute-form or CONNECT target's host when present,
	// else the Host header's, ASCII-lowercased with the port, the
	// brackets of an IPv6 literal and one trailing dot removed. It is
	// empty when the request names no host.
	Host []byte
}

var (
	errHeadTooBig  = errors.New("l7: HTTP request head exceeds MaxHead")
	errRequestLine = errors.New("l7: malformed HTTP request line")
	errHeaderField = errors.New("l7: malformed HTTP header field")
	errObsFold     = errors.New("l7: obsolete HTTP header line folding")
	errHosts       = errors.New("l7: more than one Host header")
	errHostValue   = errors.New("l7: malformed Host")
	errCL          = errors.New("l7: invalid or conflicting Content-Length")
	errTE          = errors.New("l7: Transfer-Encoding does not end in chunked")
	errTEandCL     = errors.New("l7: both Transfer-Encoding and Content-Length")
	errChunk       = errors.New("l7: malformed chunk framing")
	errTrailer     = errors.New("l7: trailer section exceeds MaxHead")
)

type httpPhase uint8

const (
	phHead      httpPhase = iota
	phBody                // skipping left bytes of a Content-Length body
	phChunkSize           // reading a chunk-size line
	phChunkData           // skipping left bytes of chunk data
	phChunkEnd            // expecting the CRLF after chunk data
	phTrailer             // reading trailer fields up to the empty line
	phOpaque              // after CONNECT/Upgrade the stream stopped being HTTP
	phFailed              // NotHTTP or HTTPError, sticky
)

// HTTPState follows the client side of an HTTP/1.x connection and yields
// one HTTPRequest event per request head, on keep-alive and pipelined
// connections alike. It skips Content-Length and chunked bodies to find
// the next request. Framing that a server could read differently (both
// Transfer-Encoding and Content-Length, conflicting lengths, several Host
// headers, line folding) is an HTTPError rather than a guess, since a
// disagreement would let a request pass uninspected.
//
// After a CONNECT or an Upgrade request the parser keeps reading requests
// if more arrive, but bytes that are not a request make the stream opaque
// (see Opaque): the tunnel or upgraded protocol is not HTTP/1.
//
// The zero value is ready to use.
type HTTPState struct {
	phase   httpPhase
	kind    EventKind // NotHTTP or HTTPError once phFailed
	err     error
	started bool // a request line was seen, so later garbage is an error
	lenient bool // the last request was CONNECT or Upgrade
	release bool // head and host back an event returned by the previous Feed

	head []byte // buffered head bytes when a head spans Feed calls
	host []byte // normalized host of the last event

	left     uint64 // body or chunk-data bytes to skip
	digits   int    // hex digits seen on the chunk-size line
	lineLen  int    // bytes seen on the current chunk-size or trailer line
	inExt    bool   // past the chunk size, in extensions
	trailers int    // trailer section bytes so far
}

// Reset returns h to its zero state, keeping its buffers.
func (h *HTTPState) Reset() {
	head, host := h.head[:0], h.host[:0]
	*h = HTTPState{head: head, host: host}
}

// Err says why the stream is NotHTTP or HTTPError; nil otherwise.
func (h *HTTPState) Err() error { return h.err }

// Opaque reports whether the stream stopped being HTTP after a CONNECT or
// Upgrade request; Feed then consumes everything without events.
func (h *HTTPState) Opaque() bool { return h.phase == phOpaque }

// Feed consumes the next bytes the client sent. It returns at the first
// complete request head with consumed counting the bytes up to and
// including it; call Feed again with data[consumed:] for what follows.
// Otherwise consumed is len(data). NotHTTP and HTTPError are sticky.
func (h *HTTPState) Feed(data []byte) (consumed int, ev Event) {
	if h.release {
		h.head, h.host, h.release = h.head[:0], h.host[:0], false
	}
	for consumed < len(data) {
		rest := data[consumed:]
		var n int
		switch h.phase {
		case phFailed:
			return len(data), Event{Kind: h.kind}
		case phOpaque:
			return len(data), Event{}
		case phHead:
			var done bool
			n, ev, done = h.feedHead(rest)
			consumed += n
			if done {
				if ev.Kind != HTTPRequest {
					consumed = len(data)
				}
				return consumed, ev
			}
			continue
		case phBody, phChunkData:
			k := uint64(len(rest))
			if k >= h.left {
				n = int(h.left)
				h.left = 0
				if h.phase == phBody {
					h.phase = phHead
				} else {
					h.phase, h.lineLen = phChunkEnd, 0
				}
			} else {
				n = len(rest)
				h.left -= k
			}
		case phChunkSize:
			n = h.chunkSize(rest)
		case phChunkEnd:
			n = h.chunkEnd(rest)
		case phTrailer:
			n = h.trailer(rest)
		}
		consumed += n
	}
	if h.phase == phFailed {
		return len(data), Event{Kind: h.kind}
	}
	return len(data), Event{}
}

func (h *HTTPState) fail(kind EventKind, err error) Event {
	if kind == HTTPError && !h.started {
		kind = NotHTTP
	}
	h.phase, h.kind, h.err = phFailed, kind, err
	return Event{Kind: kind}
}

// notRequest handles bytes where a request should start but none does.
func (h *HTTPState) notRequest(err error) Event {
	if h.lenient {
		h.phase = phOpaque
		return Event{}
	}
	return h.fail(HTTPError, err)
}

// feedHead looks for a complete head in the buffered bytes plus data. It
// returns the bytes of data used and whether ev is final for this call.
func (h *HTTPState) feedHead(data []byte) (n int, ev Event, done bool) {
	if len(h.head) == 0 {
		// Empty lines before a request line are allowed (RFC 9112 2.2).
		for n < len(data) && (data[n] == '\r' || data[n] == '\n') {
			n++
		}
		data = data[n:]
		if len(data) == 0 {
			return n, Event{}, false
		}
		if !methodPrefix(data) {
			return n, h.notRequest(errRequestLine), true
		}
		if end := headEnd(data, 0, MaxHead); end > 0 {
			ev := h.parseHead(data[:end])
			return n + end, ev, true
		}
		if len(data) >= MaxHead {
			return n, h.tooBig(data), true
		}
		h.head = append(h.head, data...)
		return n + len(data), Event{}, false
	}
	old := len(h.head)
	take := min(len(data), MaxHead-old)
	h.head = append(h.head, data[:take]...)
	if !methodPrefix(h.head) {
		return n, h.notRequest(errRequestLine), true
	}
	if end := headEnd(h.head, max(0, old-3), MaxHead); end > 0 {
		h.head = h.head[:end]
		ev := h.parseHead(h.head)
		h.release = true
		return n + end - old, ev, true
	}
	if len(h.head) >= MaxHead {
		return n, h.tooBig(h.head), true
	}
	return n + take, Event{}, false
}

// tooBig fails an over-long head: an HTTPError when it starts with a
// valid request line, since that much is HTTP.
func (h *HTTPState) tooBig(head []byte) Event {
	head = head[:min(len(head), MaxHead)]
	if line, rest := nextLine(head); rest != nil {
		if _, _, ok := requestLine(line); ok {
			h.started = true
		}
	}
	return h.fail(HTTPError, errHeadTooBig)
}

// headEnd returns the index just past the empty line that ends a head in
// b[:limit], searching for line feeds from index from; 0 if none. Bare LF
// line ends are accepted as RFC 9112 2.2 allows.
func headEnd(b []byte, from, limit int) int {
	b = b[:min(len(b), limit)]
	for i := from; i < len(b); {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return 0
		}
		i += j + 1
		if i < len(b) && b[i] == '\n' {
			return i + 1
		}
		if i+1 < len(b) && b[i] == '\r' && b[i+1] == '\n' {
			return i + 2
		}
	}
	return 0
}

// methodPrefix reports whether b can start a request line: a short token
// followed by a space, or only token bytes so far.
func methodPrefix(b []byte) bool {
	for i, c := range b {
		if c == ' ' {
			return i > 0
		}
		if i >= maxMethod || !isTchar(c) {
			return false
		}
	}
	return true
}

func isTchar(c byte) bool { return tchar[c] }

// tchar is the token alphabet of RFC 9110 5.6.2.
var tchar = func() (t [256]bool) {
	for c := range 256 {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
			t[c] = true
		}
	}
	for _, c := range []byte("!#$%&'*+-.^_`|~") {
		t[c] = true
	}
	return t
}()
