package conntrack

import "fmt"

// Counter indices into shard.ctr. Counters live in the shards so the
// packet path only touches cache lines its shard lock already owns.
const (
	cFound = iota
	cNew
	cInvalid
	cRelated
	cInsert
	cInsertFailed
	cDrop
	cEarlyDrop
	cExpired
	cRemoved
	cSourceLimit
	cHalfOpenLimit
	cIgnore
	cSearchRestart
	numCounters
)

// Stats are cumulative counters since the table was created.
type Stats struct {
	Found        uint64 // packets Track matched to an entry (Result.Found), invalid ones included
	New          uint64 // packets without an entry that may open a flow
	Invalid      uint64 // packets reported StateInvalid
	Related      uint64 // ICMP errors matched to a flow
	Insert       uint64 // entries created by Commit
	InsertFailed uint64 // Commits refused (table full or source limit)
	Drop         uint64 // Commits refused because the table was full
	EarlyDrop    uint64 // unassured entries evicted to make room
	Expired      uint64 // entries removed by timeout (lazily or by the sweeper)
	Removed      uint64 // entries removed by Delete, an RST before any reply, or a reopening SYN
	SourceLimit  uint64 // Commits refused by max_flows_per_source
	// HalfOpenLimit counts Commits refused by max_half_open_per_source.
	HalfOpenLimit uint64
	// Ignore counts packets that passed without changing state: data
	// already acknowledged, ACKs too old, ignored SYNs, inexact RSTs,
	// challenge ACKs (Linux logs these; its "ignore" statistic).
	Ignore uint64
	// SearchRestart counts eviction searches restarted because a
	// concurrent remove emptied the chosen list.
	SearchRestart uint64

	// The table's shape now (not counters): its capacity, the slots of
	// all shards' hash tables, and how often a shard's table was rebuilt
	// to grow or shrink.
	MaxFlows int64
	Slots    uint64
	Rebuilds uint64
}

// Stats sums the per-shard counters, each shard's under its lock; the set
// is consistent per shard, not across shards.
func (t *Table) Stats() Stats {
	var c [numCounters]uint64
	var slots, rebuilds uint64
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for j := range c {
			c[j] += s.ctr[j]
		}
		slots += uint64(s.nslots)
		rebuilds += s.rebuilds
		s.mu.Unlock()
	}
	return Stats{
		MaxFlows: t.maxFlows, Slots: slots, Rebuilds: rebuilds,
		Found: c[cFound], New: c[cNew], Invalid: c[cInvalid], Related: c[cRelated],
		Insert: c[cInsert], InsertFailed: c[cInsertFailed], Drop: c[cDrop],
		EarlyDrop: c[cEarlyDrop], Expired: c[cExpired], Removed: c[cRemoved],
		SourceLimit: c[cSourceLimit], HalfOpenLimit: c[cHalfOpenLimit],
		Ignore: c[cIgnore], SearchRestart: c[cSearchRestart],
	}
}

func (s Stats) String() string {
	return fmt.Sprintf("found=%d new=%d invalid=%d ignore=%d related=%d insert=%d insert_failed=%d drop=%d early_drop=%d search_restart=%d expired=%d removed=%d source_limit=%d half_open_limit=%d max_flows=%d slots=%d rebuilds=%d",
		s.Found, s.New, s.Invalid, s.Ignore, s.Related, s.Insert, s.InsertFailed, s.Drop,
		s.EarlyDrop, s.SearchRestart, s.Expired, s.Removed, s.SourceLimit, s.HalfOpenLimit,
		s.MaxFlows, s.Slots, s.Rebuilds)
}
