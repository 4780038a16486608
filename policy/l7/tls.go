package l7

import "errors"

// Status is the outcome so far of feeding a TLSState.
type Status uint8

const (
	NeedMore Status = iota // the ClientHello is not complete yet
	Done                   // the ClientHello was parsed; SNI is final (possibly empty)
	NotTLS                 // the stream is not a TLS ClientHello, or a malformed one (see Err)
)

func (s Status) String() string {
	switch s {
	case NeedMore:
		return "need-more"
	case Done:
		return "done"
	case NotTLS:
		return "not-tls"
	}
	return "status?"
}

// MaxClientHello bounds the handshake bytes a TLSState buffers (header
// included). Post-quantum key shares make ClientHellos of ~1.7 KB common;
// 16 KiB leaves room for large ones and caps per-flow memory.
const MaxClientHello = 16 << 10

// maxSNI is the longest host_name kept; DNS names cannot exceed 253.
const maxSNI = 255

const (
	recordHandshake    = 0x16
	recordHeaderLen    = 5
	maxRecordLen       = 1 << 14 // TLSPlaintext.length limit
	typeClientHello    = 1
	extServerName      = 0
	serverNameHost     = 0
	handshakeHeaderLen = 4
)

var (
	errRecordType   = errors.New("l7: first record is not a handshake")
	errRecordVer    = errors.New("l7: bad record version")
	errRecordLen    = errors.New("l7: bad record length")
	errNotHello     = errors.New("l7: first handshake message is not a ClientHello")
	errHelloTooBig  = errors.New("l7: ClientHello exceeds MaxClientHello")
	errHelloSyntax  = errors.New("l7: malformed ClientHello")
	errSNISyntax    = errors.New("l7: malformed server_name extension")
	errSNIDuplicate = errors.New("l7: duplicate server_name extension")
)

// TLSState reassembles the client's first TLS flight until the ClientHello
// is complete, across arbitrary segment boundaries and across records (a
// ClientHello may be fragmented over several handshake records). It
// reports the server_name of the ClientHello as sent in clear: with
// Encrypted Client Hello that is the outer ClientHello's public name, not
// the inner, encrypted one. An SSLv2-compatible hello is NotTLS.
//
// The zero value is ready to use; Reset makes it reusable for another
// stream while keeping its buffer.
type TLSState struct {
	status  Status
	err     error
	hdr     [recordHeaderLen]byte
	hdrN    int
	recLeft int    // body bytes left in the current record
	hs      []byte // handshake bytes reassembled so far
	sni     [maxSNI]byte
	sniN    int
}

// Reset returns t to its zero state, keeping the reassembly buffer.
func (t *TLSState) Reset() {
	hs := t.hs[:0]
	*t = TLSState{hs: hs}
}

// Status returns the last status Feed returned.
func (t *TLSState) Status() Status { return t.status }

// Err says why the stream is NotTLS; nil otherwise.
func (t *TLSState) Err() error { return t.err }

// SNI returns the ClientHello's host_name, ASCII-lowercased without a
// trailing dot, once Feed has returned Done; it is empty when the
// ClientHello has no server_name. The slice is owned by t and valid until
// Reset.
func (t *TLSState) SNI() []byte { return t.sni[:t.sniN] }

// Feed consumes the next bytes the client sent. Once Done or NotTLS is
// returned, later calls return it again without looking at data.
func (t *TLSState) Feed(data []byte) Status {
	if t.status != NeedMore {
		return t.status
	}
	if t.hdrN == 0 && t.recLeft == 0 && len(t.hs) == 0 {
		if st, ok := t.whole(data); ok {
			return st
		}
	}
	for len(data) > 0 && t.status == NeedMore {
		if t.recLeft == 0 {
			n := copy(t.hdr[t.hdrN:], data)
			t.hdrN += n
			data = data[n:]
			if err := checkHeader(t.hdr[:t.hdrN], len(t.hs) == 0); err != nil {
				return t.fail(err)
			}
			if t.hdrN == recordHeaderLen {
				t.recLeft = int(t.hdr[3])<<8 | int(t.hdr[4])
				t.hdrN = 0
			}
			continue
		}
		n := min(len(data), t.recLeft)
		t.hs = append(t.hs, data[:n]...)
		t.recLeft -= n
		data = data[n:]
		t.progress()
	}
	return t.status
}

// whole is the common case without copying: the first segment holds a
// record that holds the whole ClientHello.
func (t *TLSState) whole(data []byte) (Status, bool) {
	if len(data) < recordHeaderLen+handshakeHeaderLen || checkHeader(data[:recordHeaderLen], true) != nil {
		return 0, false
	}
	rec := int(data[3])<<8 | int(data[4])
	if rec < handshakeHeaderLen || len(data) < recordHeaderLen+rec {
		return 0, false
	}
	hs := data[recordHeaderLen : recordHeaderLen+rec]
	if hs[0] != typeClientHello {
		return 0, false
	}
	msg := int(hs[1])<<16 | int(hs[2])<<8 | int(hs[3])
	if msg > rec-handshakeHeaderLen {
		return 0, false
	}
	return t.parse(hs[handshakeHeaderLen : handshakeHeaderLen+msg]), true
}

// checkHeader validates the bytes of a record header seen so far, failing
// as early as the first byte so that other protocols are told apart fast.
func checkHeader(h []byte, first bool) error {
	if len(h) >= 1 && h[0] != recordHandshake {
		return errRecordType
	}
	if len(h) >= 2 && h[1] != 3 {
		return errRecordVer
	}
	if first && len(h) >= 3 && h[2] > 4 {
		return errRecordVer
	}
	if len(h) >= 5 {
		if n := int(h[3])<<8 | int(h[4]); n == 0 || n > maxRecordLen {
			return errRecordLen
		}
	}
	return nil
}

// progress checks the reassembled handshake bytes for a complete
// ClientHello.
func (t *TLSState) progress() {
	hs := t.hs
	if len(hs) >= 1 && hs[0] != typeClientHello {
		t.fail(errNotHello)
		return
	}
	if len(hs) < handshakeHeaderLen {
		return
	}
	msg := int(hs[1])<<16 | int(hs[2])<<8 | int(hs[3])
	if handshakeHeaderLen+msg > MaxClientHello {
		t.fail(errHelloTooBig)
		return
	}
	if len(hs) >= handshakeHeaderLen+msg {
		t.parse(hs[handshakeHeaderLen : handshakeHeaderLen+msg])
	}
}

func (t *TLSState) fail(err error) Status {
	t.status, t.err, t.sniN = NotTLS, err, 0
	return NotTLS
}

// parse reads a ClientHello body (RFC 8446 4.1.2) and records its
// server_name (RFC 6066 3).
func (t *TLSState) parse(b []byte) Status {
	s := b
	if len(s) < 2+32 || s[0] != 3 {
		return t.fail(errHelloSyntax)
	}
	s = s[2+32:] // legacy_version, random
	var ok bool
	if s, ok = skip8(s, 32); !ok { // legacy_session_id
		return t.fail(errHelloSyntax)
	}
	var suites []byte
	if suites, s, ok = vec16(s); !ok || len(suites) < 2 || len(suites)%2 != 0 {
		return t.fail(errHelloSyntax)
	}
	var comp []byte
	if comp, s, ok = vec8(s); !ok || len(comp) < 1 {
		return t.fail(errHelloSyntax)
	}
	if len(s) == 0 { // no extensions at all: definitively no SNI
		t.status = Done
		return Done
	}
	var exts []byte
	if exts, s, ok = vec16(s); !ok || len(s) != 0 {
		return t.fail(errHelloSyntax)
	}
	seen := false
	for len(exts) > 0 {
		if len(exts) < 4 {
			return t.fail(errHelloSyntax)
		}
		typ := int(exts[0])<<8 | int(exts[1])
		var body []byte
		if body, exts, ok = vec16(exts[2:]); !ok {
			return t.fail(errHelloSyntax)
		}
		if typ != extServerName {
			continue // includes GREASE and ECH: only the clear name counts
		}
		if seen {
			// Two names would let the server and the policy disagree.
			return t.fail(errSNIDuplicate)
		}
		seen = true
		if err := t.serverName(body); err != nil {
			return t.fail(err)
		}
	}
	t.status = Done
	return Done
}

// serverName takes the first host_name of a ServerNameList.
func (t *TLSState) serverName(body []byte) error {
	list, rest, ok := vec16(body)
	if !ok || len(rest) != 0 || len(list) == 0 {
		return errSNISyntax
	}
	for len(list) > 0 {
		if len(list) < 3 {
			return errSNISyntax
		}
		typ := list[0]
		var name []byte
		if name, list, ok = vec16(list[1:]); !ok {
			return errSNISyntax
		}
		if typ != serverNameHost || t.sniN > 0 {
			continue
		}
		if len(name) == 0 || len(name) > maxSNI {
			return errSNISyntax
		}
		t.sniN = len(NormalizeName(t.sni[:copy(t.sni[:], name)]))
		if t.sniN == 0 { // the name was just "."
			return errSNISyntax
		}
	}
	return nil
}

func vec8(s []byte) (v, rest []byte, ok bool) {
	if len(s) < 1 || len(s) < 1+int(s[0]) {
		return nil, nil, false
	}
	n := 1 + int(s[0])
	return s[1:n], s[n:], true
}

func vec16(s []byte) (v, rest []byte, ok bool) {
	if len(s) < 2 {
		return nil, nil, false
	}
	n := 2 + (int(s[0])<<8 | int(s[1]))
	if len(s) < n {
		return nil, nil, false
	}
	return s[2:n], s[n:], true
}

// skip8 skips an 8-bit-length vector of at most limit bytes.
func skip8(s []byte, limit int) ([]byte, bool) {
	v, rest, ok := vec8(s)
	if !ok || len(v) > limit {
		return nil, false
	}
	return rest, true
}
