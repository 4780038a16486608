package relay

import "github.com/tungate/tungate/policy"

// Stats is what a relay did, for conntrack counters and logs.
type Stats struct {
	BytesToServer, BytesToClient     int64
	PacketsToServer, PacketsToClient int64       // datagrams (UDP only)
	Hit                              *policy.Hit // the drop/reject payload hit that ended the flow
	Err                              error       // first cause of an abnormal end (I/O error, ctx.Err()); nil for a clean end or a hit
}
