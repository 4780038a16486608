package packet

// DropReason says why a packet was discarded before conntrack.
type DropReason uint8

const (
	ReasonNone          DropReason = iota
	ReasonShort                    // shorter than its IP header
	ReasonVersion                  // IP version neither 4 nor 6
	ReasonIPHeader                 // header length / total length inconsistent with the buffer
	ReasonIPChecksum               // IPv4 header checksum wrong
	ReasonFragment                 // a fragment: the hook hands it to reassembly first
	ReasonExtHeader                // IPv6 extension chain too long or truncated
	ReasonProto                    // a protocol this mode does not carry
	ReasonTransport                // transport header truncated or inconsistent
	ReasonChecksum                 // TCP/UDP/ICMP checksum wrong
	ReasonICMPType                 // an ICMP type a gateway does not pass
	ReasonICMPQuote                // an ICMP error quoting something unusable
	ReasonRoutingHeader            // IPv6 type 0 routing header with segments left (RFC 5095)
	NumReasons
)

// reasonNames key the data plane's malformed counters, which operators
// see: renaming one breaks whoever watches it.
var reasonNames = [NumReasons]string{
	ReasonNone:          "none",
	ReasonShort:         "short",
	ReasonVersion:       "ip_version",
	ReasonIPHeader:      "ip_header",
	ReasonIPChecksum:    "ip_checksum",
	ReasonFragment:      "fragment",
	ReasonExtHeader:     "ipv6_ext_header",
	ReasonProto:         "protocol",
	ReasonTransport:     "transport_header",
	ReasonChecksum:      "checksum",
	ReasonICMPType:      "icmp_type",
	ReasonICMPQuote:     "icmp_quote",
	ReasonRoutingHeader: "ipv6_routing0",
}

func (r DropReason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return "unknown"
}
