package l7

import "bytes"

var slash = []byte("/")

// nextLine splits off one line, without its CRLF or LF.
func nextLine(b []byte) (line, rest []byte) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return b, nil
	}
	line, rest = b[:i], b[i+1:]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, rest
}

// parseHead reads a complete request head (RFC 9112 3, 5, 6) and sets up
// the body framing that follows it.
func (h *HTTPState) parseHead(b []byte) Event {
	line, b := nextLine(b)
	method, target, ok := requestLine(line)
	if !ok {
		return h.notRequest(errRequestLine)
	}
	h.started, h.lenient = true, false

	var hostHdr []byte
	var hosts int
	var cl uint64
	var clSeen, teSeen, upgrade bool
	var lastTE []byte
	for {
		line, b = nextLine(b)
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return h.fail(HTTPError, errObsFold)
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !allTchar(line[:colon]) {
			return h.fail(HTTPError, errHeaderField)
		}
		name, value := line[:colon], trimOWS(line[colon+1:])
		for _, c := range value {
			if (c < ' ' && c != '\t') || c == 0x7f {
				return h.fail(HTTPError, errHeaderField)
			}
		}
		switch {
		case bytes.EqualFold(name, []byte("host")):
			hosts++
			hostHdr = value
		case bytes.EqualFold(name, []byte("content-length")):
			n, ok := parseDecimal(value)
			if !ok || (clSeen && n != cl) {
				return h.fail(HTTPError, errCL)
			}
			cl, clSeen = n, true
		case bytes.EqualFold(name, []byte("transfer-encoding")):
			teSeen = true
			for elem := range bytes.SplitSeq(value, []byte(",")) {
				if e := trimOWS(elem); len(e) > 0 {
					lastTE = e
				}
			}
		case bytes.EqualFold(name, []byte("upgrade")):
			upgrade = len(value) > 0
		}
	}
	if hosts > 1 {
		return h.fail(HTTPError, errHosts)
	}
	switch {
	case teSeen && clSeen:
		return h.fail(HTTPError, errTEandCL)
	case teSeen && !bytes.EqualFold(lastTE, []byte("chunked")):
		return h.fail(HTTPError, errTE)
	}

	ev := Event{Kind: HTTPRequest, Method: method, Target: target, Path: target}
	authority := hostHdr
	connect := string(method) == "CONNECT"
	if connect {
		authority, ev.Path = target, target[:0]
	} else if a, path, ok := absoluteForm(target); ok {
		authority, ev.Path = a, path
		if len(path) == 0 {
			ev.Path = slash
		}
	}
	host, ok := hostOf(authority)
	if !ok {
		return h.fail(HTTPError, errHostValue)
	}
	h.host = NormalizeName(append(h.host[:0], host...))
	ev.Host = h.host

	h.lenient = connect || upgrade
	switch {
	case teSeen:
		h.phase, h.left, h.digits, h.lineLen, h.inExt = phChunkSize, 0, 0, 0, false
	case cl > 0:
		h.phase, h.left = phBody, cl
	default:
		h.phase = phHead
	}
	return ev
}

// requestLine splits "method SP request-target SP HTTP/1.d".
func requestLine(line []byte) (method, target []byte, ok bool) {
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 || sp > maxMethod || !allTchar(line[:sp]) {
		return nil, nil, false
	}
	method, line = line[:sp], line[sp+1:]
	sp = bytes.IndexByte(line, ' ')
	if sp <= 0 {
		return nil, nil, false
	}
	target, version := line[:sp], line[sp+1:]
	for _, c := range target {
		if c <= ' ' || c >= 0x7f {
			return nil, nil, false
		}
	}
	if len(version) != 8 || string(version[:7]) != "HTTP/1." || version[7] < '0' || version[7] > '9' {
		return nil, nil, false
	}
	return method, target, true
}

// absoluteForm splits "scheme://authority/path?query" (RFC 9112 3.2.2).
func absoluteForm(target []byte) (authority, path []byte, ok bool) {
	i := bytes.Index(target, []byte("://"))
	if i <= 0 {
		return nil, nil, false
	}
	for k, c := range target[:i] {
		alpha := 'a' <= c|0x20 && c|0x20 <= 'z'
		if !alpha && (k == 0 || !('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return nil, nil, false
		}
	}
	rest := target[i+3:]
	end := bytes.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	return rest[:end], rest[end:], true
}

// hostOf takes the host out of an authority: without userinfo, port or
// IPv6 brackets.
func hostOf(a []byte) ([]byte, bool) {
	if i := bytes.LastIndexByte(a, '@'); i >= 0 {
		a = a[i+1:]
	}
	if len(a) > 0 && a[0] == '[' {
		end := bytes.IndexByte(a, ']')
		if end < 0 || (end+1 < len(a) && a[end+1] != ':') {
			return nil, false
		}
		a = a[1:end]
	} else if i := bytes.IndexByte(a, ':'); i >= 0 {
		a = a[:i]
	}
	for _, c := range a {
		if c <= ' ' || c >= 0x7f || bytes.IndexByte([]byte("/\\[]@"), c) >= 0 {
			return nil, false
		}
	}
	return a, true
}

func allTchar(b []byte) bool {
	for _, c := range b {
		if !tchar[c] {
			return false
		}
	}
	return len(b) > 0
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// parseDecimal reads a Content-Length: digits only, at most 18 of them.
func parseDecimal(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

// chunkSize reads the chunk-size line: hex digits, then optional
// extensions (not interpreted) up to the line end.
func (h *HTTPState) chunkSize(b []byte) int {
	for i, c := range b {
		h.lineLen++
		if h.lineLen > maxChunkLine {
			h.fail(HTTPError, errChunk)
			return i + 1
		}
		if c == '\n' {
			if h.digits == 0 {
				h.fail(HTTPError, errChunk)
			} else if h.left == 0 {
				h.phase, h.lineLen, h.trailers = phTrailer, 0, 0
			} else {
				h.phase = phChunkData
			}
			return i + 1
		}
		if h.inExt {
			continue
		}
		if v, ok := hexDigit(c); ok {
			h.digits++
			if h.digits > 15 { // keeps the size far from overflow
				h.fail(HTTPError, errChunk)
				return i + 1
			}
			h.left = h.left<<4 | uint64(v)
			continue
		}
		if h.digits == 0 || (c != ';' && c != ' ' && c != '\t' && c != '\r') {
			h.fail(HTTPError, errChunk)
			return i + 1
		}
		h.inExt = true
	}
	return len(b)
}

func hexDigit(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c|0x20 && c|0x20 <= 'f':
		return c | 0x20 - 'a' + 10, true
	}
	return 0, false
}

// chunkEnd expects the CRLF (or LF) closing chunk data.
func (h *HTTPState) chunkEnd(b []byte) int {
	for i, c := range b {
		switch {
		case c == '\r' && h.lineLen == 0:
			h.lineLen = 1
		case c == '\n':
			h.phase, h.left, h.digits, h.lineLen, h.inExt = phChunkSize, 0, 0, 0, false
			return i + 1
		default:
			h.fail(HTTPError, errChunk)
			return i + 1
		}
	}
	return len(b)
}

// trailer skips trailer fields up to the empty line that ends the message.
func (h *HTTPState) trailer(b []byte) int {
	for i, c := range b {
		h.trailers++
		if h.trailers > MaxHead {
			h.fail(HTTPError, errTrailer)
			return i + 1
		}
		switch c {
		case '\n':
			if h.lineLen == 0 {
				h.phase = phHead
				return i + 1
			}
			h.lineLen = 0
		case '\r':
		default:
			h.lineLen++
		}
	}
	return len(b)
}
