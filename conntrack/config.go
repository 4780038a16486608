package conntrack

import (
	"time"

	"github.com/tungate/tungate/internal/cfgerr"
	"github.com/tungate/tungate/internal/units"
)

// Config is the [conntrack] section.
type Config struct {
	MaxFlows          int `toml:"max_flows"`            // default 262144
	MaxFlowsPerSource int `toml:"max_flows_per_source"` // default 4096; IPv6 sources counted per /64
	// MaxHalfOpen is the share of max_flows that unreplied flows (SYN_SENT,
	// unanswered UDP and echo requests) may hold, 0 < x <= 1; default
	// 0.25. Beyond it the oldest unreplied flow is evicted.
	MaxHalfOpen float64 `toml:"max_half_open"`
	// MaxHalfOpenPerSource caps one source's unreplied flows; default
	// max_flows_per_source/4. Beyond it Commit returns ErrHalfOpenLimit.
	MaxHalfOpenPerSource int `toml:"max_half_open_per_source"`
	// Loose lets an ACK without an entry pick up a connection mid-stream
	// (Linux nf_conntrack_tcp_loose), for a gateway restarted under live
	// traffic. Picked-up flows skip window checks (both sides liberal) and
	// live at most tcp_unacknowledged until the other side answers. Off by
	// default: a security gateway only opens connections on a SYN.
	Loose bool `toml:"loose"`
	// Preallocate sizes every shard for its share of max_flows at start,
	// so the table never grows under traffic (a growth re-places one
	// shard's flows under its lock: 18 ms per shard at 16M flows). The
	// memory for max_flows (~230 bytes each) is reserved up front and
	// becomes resident as flows fill it. Off by default.
	Preallocate bool     `toml:"preallocate"`
	Timeouts    Timeouts `toml:"timeouts"` // [conntrack.timeouts]
}

// Timeouts are the idle timeouts per protocol state, Linux defaults
// (Documentation/networking/nf_conntrack-sysctl.rst). TCP SYN_SENT2 uses
// TCPSynSent, as in Linux.
type Timeouts struct {
	TCPEstablished units.Duration `toml:"tcp_established"`    // 5d
	TCPSynSent     units.Duration `toml:"tcp_syn_sent"`       // 120s
	TCPSynRecv     units.Duration `toml:"tcp_syn_recv"`       // 60s
	TCPFinWait     units.Duration `toml:"tcp_fin_wait"`       // 120s
	TCPCloseWait   units.Duration `toml:"tcp_close_wait"`     // 60s
	TCPLastAck     units.Duration `toml:"tcp_last_ack"`       // 30s
	TCPTimeWait    units.Duration `toml:"tcp_time_wait"`      // 120s
	TCPClose       units.Duration `toml:"tcp_close"`          // 10s
	TCPMaxRetrans  units.Duration `toml:"tcp_max_retrans"`    // 300s, after 3 identical retransmissions or a zero window
	TCPUnack       units.Duration `toml:"tcp_unacknowledged"` // 300s, while data is unacknowledged
	UDP            units.Duration `toml:"udp"`                // 30s, until the flow is a stream
	UDPStream      units.Duration `toml:"udp_stream"`         // 120s, replied and still active after 2s
	ICMP           units.Duration `toml:"icmp"`               // 30s
}

const (
	defaultMaxFlows          = 262144
	defaultMaxFlowsPerSource = 4096
	defaultMaxHalfOpen       = 0.25
	// maxMaxFlows keeps slot and node numbers well inside 32 bits and
	// the memory an operator can ask for within reason.
	maxMaxFlows = 1 << 28
	// maxTimeout keeps deadlines (ns since the table's start, int64) far
	// from overflowing.
	maxTimeout = 3650 * 24 * time.Hour
)

// Defaults fills zero values with the documented defaults.
func (c *Config) Defaults() {
	if c.MaxFlows == 0 {
		c.MaxFlows = defaultMaxFlows
	}
	if c.MaxFlowsPerSource == 0 {
		c.MaxFlowsPerSource = defaultMaxFlowsPerSource
	}
	if c.MaxHalfOpen == 0 {
		c.MaxHalfOpen = defaultMaxHalfOpen
	}
	if c.MaxHalfOpenPerSource == 0 {
		c.MaxHalfOpenPerSource = max(1, c.MaxFlowsPerSource/4)
	}
	c.Timeouts.defaults()
}

func (t *Timeouts) defaults() {
	set := func(d *units.Duration, v time.Duration) {
		if *d == 0 {
			*d = units.Duration(v)
		}
	}
	set(&t.TCPEstablished, 5*24*time.Hour)
	set(&t.TCPSynSent, 120*time.Second)
	set(&t.TCPSynRecv, 60*time.Second)
	set(&t.TCPFinWait, 120*time.Second)
	set(&t.TCPCloseWait, 60*time.Second)
	set(&t.TCPLastAck, 30*time.Second)
	set(&t.TCPTimeWait, 120*time.Second)
	set(&t.TCPClose, 10*time.Second)
	set(&t.TCPMaxRetrans, 300*time.Second)
	set(&t.TCPUnack, 300*time.Second)
	set(&t.UDP, 30*time.Second)
	set(&t.UDPStream, 120*time.Second)
	set(&t.ICMP, 30*time.Second)
}

// Validate reports every invalid setting, with keys starting at the
// section name ({"conntrack", "max_flows"}). Call it after Defaults.
func (c *Config) Validate() cfgerr.List {
	var l cfgerr.List
	if c.MaxFlows < 1 || c.MaxFlows > maxMaxFlows {
		l.Addf("must be between 1 and 268435456", "conntrack", "max_flows")
	}
	if c.MaxFlowsPerSource < 1 {
		l.Addf("must be at least 1", "conntrack", "max_flows_per_source")
	}
	if !(c.MaxHalfOpen > 0 && c.MaxHalfOpen <= 1) {
		l.Addf("must be a share of max_flows greater than 0 and at most 1", "conntrack", "max_half_open")
	}
	if c.MaxHalfOpenPerSource < 1 {
		l.Addf("must be at least 1", "conntrack", "max_half_open_per_source")
	}
	for _, f := range c.Timeouts.fields() {
		switch {
		case *f.d <= 0:
			l.Addf("must be a positive duration", "conntrack", "timeouts", f.key)
		case f.d.D() > maxTimeout:
			l.Addf("must be at most 3650d (ten years)", "conntrack", "timeouts", f.key)
		}
	}
	return l
}

type timeoutField struct {
	key string
	d   *units.Duration
}

func (t *Timeouts) fields() []timeoutField {
	return []timeoutField{
		{"tcp_established", &t.TCPEstablished},
		{"tcp_syn_sent", &t.TCPSynSent},
		{"tcp_syn_recv", &t.TCPSynRecv},
		{"tcp_fin_wait", &t.TCPFinWait},
		{"tcp_close_wait", &t.TCPCloseWait},
		{"tcp_last_ack", &t.TCPLastAck},
		{"tcp_time_wait", &t.TCPTimeWait},
		{"tcp_close", &t.TCPClose},
		{"tcp_max_retrans", &t.TCPMaxRetrans},
		{"tcp_unacknowledged", &t.TCPUnack},
		{"udp", &t.UDP},
		{"udp_stream", &t.UDPStream},
		{"icmp", &t.ICMP},
	}
}
