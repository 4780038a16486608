package l7

import "errors"

// maxDNSTCP is the largest message a 2-byte length prefix can frame.
const maxDNSTCP = 1<<16 - 1

var errDNSTooLong = errors.New("l7: DNS message longer than 65535 bytes")

// TCPFramer splits a DNS-over-TCP stream (RFC 1035 4.2.2: each message
// preceded by its 2-byte big-endian length) into messages, however the
// stream is segmented. It buffers at most one message. The zero value is
// ready to use.
type TCPFramer struct {
	buf     []byte // length prefix and body of a message spanning Feed calls
	release bool   // buf backs the message returned by the previous Feed
}

// Reset forgets any partial message, keeping the buffer.
func (f *TCPFramer) Reset() { f.buf, f.release = f.buf[:0], false }

// Feed consumes stream bytes up to the end of the next complete message
// and returns it with ok; call again with data[consumed:] for the rest.
// Without a complete message it buffers all of data and returns !ok. The
// message is read-only and valid until the next Feed or Reset; it aliases
// data when the whole message arrived in one piece.
func (f *TCPFramer) Feed(data []byte) (consumed int, msg []byte, ok bool) {
	if f.release {
		f.buf, f.release = f.buf[:0], false
	}
	if len(f.buf) == 0 && len(data) >= 2 {
		if n := 2 + (int(data[0])<<8 | int(data[1])); len(data) >= n {
			return n, data[2:n], true
		}
	}
	if len(f.buf) < 2 {
		k := min(2-len(f.buf), len(data))
		f.buf = append(f.buf, data[:k]...)
		consumed = k
		if len(f.buf) < 2 {
			return consumed, nil, false
		}
	}
	need := 2 + (int(f.buf[0])<<8 | int(f.buf[1]))
	k := min(need-len(f.buf), len(data)-consumed)
	f.buf = append(f.buf, data[consumed:consumed+k]...)
	consumed += k
	if len(f.buf) < need {
		return consumed, nil, false
	}
	f.release = true
	return consumed, f.buf[2:], true
}

// AppendTCPFrame appends msg with its 2-byte length prefix to dst.
func AppendTCPFrame(dst, msg []byte) ([]byte, error) {
	if len(msg) > maxDNSTCP {
		return dst, errDNSTooLong
	}
	return append(append(dst, byte(len(msg)>>8), byte(len(msg))), msg...), nil
}
