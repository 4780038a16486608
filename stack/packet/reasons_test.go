package packet

import "testing"

// TestDropReasonNames pins the operator-visible names.
func TestDropReasonNames(t *testing.T) {
	want := map[DropReason]string{
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
		NumReasons:          "unknown",
		255:                 "unknown",
	}
	for r, name := range want {
		if got := r.String(); got != name {
			t.Errorf("DropReason(%d).String() = %q; want %q", r, got, name)
		}
	}
	if got, want := len(want)-2, int(NumReasons); got != want {
		t.Errorf("the test names %d reasons; the package has %d", got, want)
	}
}
