package l7

import (
	"bytes"
	"errors"

	"golang.org/x/net/dns/dnsmessage"
)

var (
	errDNSResponse  = errors.New("l7: DNS message is a response, not a query")
	errDNSQuestions = errors.New("l7: DNS query does not have exactly one question")
	errDNSName      = errors.New("l7: DNS question name is compressed or has a label containing a dot")
	errDNSOpCode    = errors.New("l7: DNS opcode is not QUERY")
)

const dnsHeaderLen = 12

// Query is the part of a DNS query a policy decides on.
type Query struct {
	ID     uint16
	OpCode dnsmessage.OpCode
	// Flags is the header's flags word as sent (QR, opcode, AA, TC, RD,
	// RA, Z, AD, CD, RCODE).
	Flags uint16
	Type  dnsmessage.Type
	Class dnsmessage.Class

	name    [255]byte
	nameLen uint8
}

const (
	flagRD = 1 << 8
	flagAD = 1 << 5
	flagCD = 1 << 4
)

// Name returns the question name, ASCII-lowercased without the trailing
// dot (empty for the root). It aliases q.
func (q *Query) Name() []byte { return q.name[:q.nameLen] }

// RecursionDesired reports the RD flag.
func (q *Query) RecursionDesired() bool { return q.Flags&flagRD != 0 }

// CheckingDisabled reports the CD flag.
func (q *Query) CheckingDisabled() bool { return q.Flags&flagCD != 0 }

// ParseQuery reads a DNS query with exactly one question. Records in the
// other sections (such as an EDNS OPT) are not examined. A question name
// whose label contains a '.' is refused: dnsmessage presents names in
// dotted form, so such a label would read as two and could fake a suffix.
func ParseQuery(msg []byte) (Query, error) {
	var q Query
	h, qu, err := parseQuestion(msg)
	if err != nil {
		return q, err
	}
	q.ID, q.OpCode, q.Type, q.Class = h.ID, h.OpCode, qu.Type, qu.Class
	q.Flags = uint16(msg[2])<<8 | uint16(msg[3])
	n := copy(q.name[:], qu.Name.Data[:qu.Name.Length])
	q.nameLen = uint8(len(NormalizeName(q.name[:n])))
	return q, nil
}

func parseQuestion(msg []byte) (dnsmessage.Header, dnsmessage.Question, error) {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil {
		return h, dnsmessage.Question{}, err
	}
	if h.Response {
		return h, dnsmessage.Question{}, errDNSResponse
	}
	q, err := p.Question()
	if err == dnsmessage.ErrSectionDone {
		return h, q, errDNSQuestions
	}
	if err != nil {
		return h, q, err
	}
	if _, err := p.Question(); err != dnsmessage.ErrSectionDone {
		return h, q, errDNSQuestions
	}
	if !plainLabels(msg[dnsHeaderLen:]) {
		return h, q, errDNSName
	}
	return h, q, nil
}

// plainLabels checks the wire form of the question name, which dnsmessage
// has already bounds-checked: uncompressed labels without a '.' byte.
func plainLabels(b []byte) bool {
	for len(b) > 0 {
		l := int(b[0])
		if l == 0 {
			return true
		}
		if l&0xc0 != 0 || len(b) < 1+l || bytes.IndexByte(b[1:1+l], '.') >= 0 {
			return false
		}
		b = b[1+l:]
	}
	return false
}

// NXDomain appends to dst[:0] an NXDOMAIN response to query: the same ID,
// opcode and question (with the name's case exactly as asked, which
// resolvers using 0x20 randomisation check), RD and CD copied from the
// query, and RA set, since the gateway answers as the client's recursive
// resolver. It carries no SOA, so resolvers do not cache the denial
// (RFC 2308), and no OPT record, which reads as a non-EDNS responder. It
// allocates nothing when dst has room (the question plus 12 bytes).
func NXDomain(query []byte, dst []byte) ([]byte, error) {
	h, q, err := parseQuestion(query)
	if err != nil {
		return nil, err
	}
	if h.OpCode != 0 {
		return nil, errDNSOpCode
	}
	b := dnsmessage.NewBuilder(dst[:0], dnsmessage.Header{
		ID:                 h.ID,
		Response:           true,
		OpCode:             h.OpCode,
		RecursionDesired:   h.RecursionDesired,
		RecursionAvailable: true,
		CheckingDisabled:   h.CheckingDisabled,
		RCode:              dnsmessage.RCodeNameError,
	})
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	return b.Finish()
}
