package decisionlog

import "net/netip"

// Record is one decision before formatting. Filling one in costs nothing;
// formatting happens only once the budget has admitted the line.
type Record struct {
	Rule     string
	Action   string
	Proto    uint8
	Src, Dst netip.AddrPort
	Reason   string // one of the Reason constants
	Pattern  string // the payload pattern that matched, for payload hits only
	// Field and Value: the L7 field that decided, under its attribute name
	// (sni, http_host, http_method, http_path or dns_qname), and its value.
	Field, Value string
}
