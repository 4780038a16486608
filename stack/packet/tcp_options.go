package packet

import (
	"encoding/binary"

	"github.com/tungate/tungate/conntrack"
)

// TCP option kinds conntrack's window tracking reads (RFC 9293, 7323,
// 2018).
const (
	tcpOptEnd    = 0
	tcpOptNOP    = 1
	tcpOptWScale = 3
	tcpOptSACKOK = 4
	tcpOptSACK   = 5
)

// maxWScale is the largest window scale shift RFC 7323 §2.3 allows; a
// larger one counts as 14.
const maxWScale = 14

// parseTCPOptions fills the option fields of c from opts, the option bytes
// of a segment with the given flags. Like Linux's tcp_parse_options it
// stops at a malformed option and keeps what it read before: a bad option
// list is the endpoints' business, not a reason to drop the segment.
// Window scale and SACK-permitted count only on a SYN (RFC 7323 §2.2,
// RFC 2018 §2).
func parseTCPOptions(opts []byte, flags uint8, c *conntrack.Packet) {
	c.TCPOpts = true
	c.WScale = -1
	for i := 0; i < len(opts); {
		kind := opts[i]
		if kind == tcpOptEnd {
			return
		}
		if kind == tcpOptNOP {
			i++
			continue
		}
		if i+1 >= len(opts) {
			return
		}
		n := int(opts[i+1])
		if n < 2 || i+n > len(opts) {
			return
		}
		body := opts[i+2 : i+n]
		switch {
		case kind == tcpOptWScale && n == 3 && flags&TCPSyn != 0:
			c.WScale = int8(min(body[0], maxWScale))
		case kind == tcpOptSACKOK && n == 2 && flags&TCPSyn != 0:
			c.SACKPerm = true
		case kind == tcpOptSACK && (n-2)%8 == 0:
			// Each block is a left and a right edge; only the right
			// edges matter, the highest in sequence space winning.
			for b := 0; b+8 <= len(body); b += 8 {
				right := binary.BigEndian.Uint32(body[b+4:])
				if c.SACKEdge == 0 || int32(right-c.SACKEdge) > 0 {
					c.SACKEdge = right
				}
			}
		}
		i += n
	}
}
