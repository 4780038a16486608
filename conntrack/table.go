package conntrack

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"math"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
)

// Errors Commit returns.
var (
	ErrTableFull     = errors.New("conntrack: table full and no unassured flow to evict")
	ErrSourceLimit   = errors.New("conntrack: too many flows from this source")
	ErrHalfOpenLimit = errors.New("conntrack: too many unanswered flows from this source")
	ErrNotNew        = errors.New("conntrack: packet cannot open a flow")
)

// Options are the table's run-time dependencies.
type Options struct {
	// Now is the clock; nil means the real monotonic clock. Tests inject
	// one to step through timeouts.
	Now func() time.Time

	// OnDestroy, when set, is called once for every entry that leaves the
	// table, whatever the cause (expiry found by a lookup or the sweeper,
	// Delete, eviction, a closed connection reopened or reset), with the
	// flow's original-direction key and the reason. It is how the owner of
	// per-flow state kept beside the table (which holds no pointers) learns
	// that a flow is gone without walking the table, and unlike an event
	// subscription it is never lossy. It runs synchronously with the flow's
	// shard lock held: it must be quick and must not call the Table.
	OnDestroy func(orig Key, why DestroyReason)
}

const (
	shardBits = 6
	numShards = 1 << shardBits
	cacheLine = 64
)

// Table is the flow table. It is safe for concurrent use.
//
// Layout. Each of 64 shards is an open-addressing hash table that holds
// pointer-free entries in its slots, with a control byte per slot beside
// them (slots.go). The hash is seeded and symmetric (a flow's two keys
// hash alike), so one slot serves both directions, the shard is picked
// from the same hash, one mutex covers a flow as one bucket lock does in
// Linux, and a packet's key is hashed once. The garbage collector sees
// three slices per shard and no per-flow pointer at all.
//
// Why not map[Key]uint32 into an arena: it stored each 40-byte key twice
// more (once per direction) and hashed the key again inside the map: 302
// heap bytes per flow and ~565 ns for a cache-cold lookup at 1M flows. An
// index of our own into an arena still cost two cache misses (index word,
// then entry): ~370-415 ns.
//
// Why entries in place rather than by value in a Go map: every tracked
// packet mutates its entry; with values in a map that is a lookup plus a
// store of the whole entry. BenchmarkStorageChoice measures the two.
type Table struct {
	shards [numShards]shard
	srcs   [numShards]srcShard

	seed [4]uint64

	// count is live entries plus in-flight Commit reservations; it never
	// exceeds maxFlows (see reserveSlot). halfOpen likewise counts
	// unreplied entries and reservations against maxHalfOpen.
	count           atomic.Int64
	halfOpen        atomic.Int64
	maxFlows        int64
	maxHalfOpen     int64
	maxPerSource    int32
	maxHalfPerSrc   int32
	loose           bool
	tcpTimeout      [numTCPStates]int64 // nanoseconds
	tcpRetransTO    int64
	tcpUnackTO      int64
	udpTimeout      int64
	udpStreamTimout int64
	icmpTimeout     int64

	epoch time.Time
	nowFn func() time.Time
	// coarse is the clock Run maintains, in ns since epoch; 0 when no Run
	// is active.
	coarse atomic.Int64

	ev eventHub

	onDestroy func(orig Key, why DestroyReason) // Options.OnDestroy
}

// udpStreamAfter is Linux's stream_ts: a replied UDP flow becomes a stream
// (assured, long timeout) only when it is still active this long after
// creation, so one DNS query and answer never pins an unevictable entry.
const udpStreamAfter = int64(2 * time.Second)

// entry flags.
const (
	eInUse uint8 = 1 << iota
	eSeenReply
	eAssured
	// eSourceFree: the TCP flow closed (TIME_WAIT or CLOSE) and gave its
	// place among its source's flows back. Like Linux's connlimit, only
	// live connections count against max_flows_per_source and max_conns:
	// a client that opens and properly closes connections is not refused
	// for the ones still lingering in TIME_WAIT.
	eSourceFree
)

// entry is one flow. It holds no pointers (see Table). Fields are ordered
// so that what every packet touches (key, deadline, counters) comes first;
// TCP state follows (160 bytes, no padding).
type entry struct {
	key      Key // original direction; the reply key is derived (replyKey)
	tcp      TCPState
	flags    uint8
	verdict  Verdict
	deadline int64 // ns since Table.epoch; expired when now >= deadline
	created  int64 // ns since Table.epoch
	packets  [2]uint64
	bytes    [2]uint64
	node     uint32 // the flow's list node while it is unassured (lists.go); 0 = none
	conn     tcpConn
}

// A chunk is chunkSize consecutive slots: the sweeper's unit of work (one
// lock hold) and the span one minDeadline bound covers.
const (
	chunkBits = 8
	chunkSize = 1 << chunkBits
)

type shard struct {
	// mu guards every field below except oldest, and every entry.
	mu sync.Mutex
	// entries and ctrl are the shard's hash table (slots.go): slots
	// 1..nslots; slot 0 is never used, so 0 can mean "no slot".
	entries []entry
	ctrl    []uint8
	// hash32[slot] is the low 32 bits of the slot's flow hash, which
	// give its home: deletion and growth read it here, in a dense array
	// that stays cached, rather than from the entries.
	hash32 []uint32
	nslots uint32
	// minDeadline[i] is at or below every live entry's deadline in chunk
	// i (slots i*chunkSize ...): lowered whenever a deadline is set lower,
	// made exact by the sweeper, which skips a chunk whose bound lies
	// ahead. Dense beside the entries so the packet path's check stays on
	// one hot cache line.
	minDeadline []int64
	rebuilds    uint64 // growths, for tests and benchmarks
	floor       uint32 // the sweeper never shrinks the table below this (Preallocate)

	// nodes hold the unassured lists (lists.go); head and tail are node
	// numbers, 0 the sentinel.
	nodes      []listNode
	freeNode   uint32
	head, tail [2]uint32
	// oldest[l] is the age key (listNode.since) of list l's head, or
	// MaxInt64 when empty. Written under mu, read without it by evictOldest to pick a
	// shard. (A dense array of all shards' values, scanned in 8 cache lines
	// instead of 64, measured slower: both cores' writes then share lines.)
	oldest [2]atomic.Int64
	live   int // entries in use

	// ctr counts events for Stats. Plain integers under mu: the packet
	// path holds the lock anyway, and a locked add per counter would cost
	// more than the rest of an established packet's work.
	ctr [numCounters]uint64

	_ [cacheLine]byte // keep neighbouring shards' locks off this line
}

type srcKey struct {
	addr [16]byte // IPv6 sources truncated to /64
	fam  uint8
}

type srcCount struct{ flows, half int32 }

type srcShard struct {
	mu sync.Mutex // guards n
	n  map[srcKey]srcCount
	_  [cacheLine]byte
}

// New returns an empty table. cfg should have had Defaults applied and
// passed Validate; out-of-range values are clamped to something usable.
func New(cfg Config, opts Options) *Table {
	cfg.Defaults()
	maxFlows := int64(max(1, min(cfg.MaxFlows, maxMaxFlows)))
	share := min(max(cfg.MaxHalfOpen, 0), 1)
	t := &Table{
		maxFlows:      maxFlows,
		maxHalfOpen:   max(1, int64(math.Ceil(share*float64(maxFlows)))),
		maxPerSource:  int32(max(1, min(cfg.MaxFlowsPerSource, math.MaxInt32))),
		maxHalfPerSrc: int32(max(1, min(cfg.MaxHalfOpenPerSource, math.MaxInt32))),
		loose:         cfg.Loose,
		nowFn:         opts.Now,
		onDestroy:     opts.OnDestroy,
	}
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	for i := range t.seed {
		t.seed[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	if t.nowFn != nil {
		t.epoch = t.nowFn()
	} else {
		t.epoch = time.Now()
	}
	to := &cfg.Timeouts
	ns := func(d interface{ D() time.Duration }) int64 { return max(1, min(int64(d.D()), int64(maxTimeout))) }
	t.tcpTimeout = [numTCPStates]int64{
		TCPNone:        ns(to.TCPClose),
		TCPSynSent:     ns(to.TCPSynSent),
		TCPSynRecv:     ns(to.TCPSynRecv),
		TCPEstablished: ns(to.TCPEstablished),
		TCPFinWait:     ns(to.TCPFinWait),
		TCPCloseWait:   ns(to.TCPCloseWait),
		TCPLastAck:     ns(to.TCPLastAck),
		TCPTimeWait:    ns(to.TCPTimeWait),
		TCPClose:       ns(to.TCPClose),
		TCPSynSent2:    ns(to.TCPSynSent),
	}
	t.tcpRetransTO = ns(to.TCPMaxRetrans)
	t.tcpUnackTO = ns(to.TCPUnack)
	t.udpTimeout = ns(to.UDP)
	t.udpStreamTimout = ns(to.UDPStream)
	t.icmpTimeout = ns(to.ICMP)
	for i := range t.shards {
		s := &t.shards[i]
		s.oldest[0].Store(math.MaxInt64)
		s.oldest[1].Store(math.MaxInt64)
		t.srcs[i].n = make(map[srcKey]srcCount)
		if cfg.Preallocate {
			s.rebuild(preallocFlows(maxFlows))
			s.floor = s.nslots
		}
	}
	return t
}

// preallocFlows is what one shard is sized for when the table is
// preallocated: its share of maxFlows plus room for the hash's uneven
// spread (about six standard deviations), so that a full table almost
// never grows a shard.
func preallocFlows(maxFlows int64) int {
	share := float64(maxFlows) / numShards
	return int(share + 6*math.Sqrt(share) + 16)
}

// now is nanoseconds since the table was created. While Run runs it is
// the coarse clock Run keeps (an atomic load, 10 ms resolution, plenty for
// timeouts of seconds); otherwise time.Since, which reads the vDSO clock
// (BenchmarkClock measures both, BenchmarkTrackEstablished the effect).
func (t *Table) now() int64 {
	if t.nowFn != nil {
		return int64(t.nowFn().Sub(t.epoch))
	}
	if c := t.coarse.Load(); c != 0 {
		return c
	}
	return int64(time.Since(t.epoch))
}

func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a^0xa0761d6478bd642f, b^0xe7037ed1a0b428db)
	return hi ^ lo
}

// hash is the flow hash of k: seeded with a per-process random value, so
// crafted tuples cannot pile onto one shard or one index run, and
// symmetric, so k and replyKey(k) hash alike. Each endpoint (address and
// port) is hashed on its own and the two are added; ICMP keys hash their
// identifier with the protocol since it is the same in both directions.
func (t *Table) hash(k *Key) uint64 {
	le := binary.LittleEndian
	ps, pd := uint64(k.SrcPort), uint64(k.DstPort)
	x := uint64(k.Proto) | uint64(k.Family)<<8
	if isICMP(k.Proto) {
		x |= ps<<16 | pd<<32
		ps, pd = 0, 0
	}
	a := mix(mix(le.Uint64(k.Src[:8])^t.seed[0], le.Uint64(k.Src[8:])^t.seed[1]), ps^t.seed[2])
	b := mix(mix(le.Uint64(k.Dst[:8])^t.seed[0], le.Uint64(k.Dst[8:])^t.seed[1]), pd^t.seed[2])
	return mix(a+b, x^t.seed[3])
}

func (t *Table) shardFor(h uint64) *shard { return &t.shards[h>>(64-shardBits)] }

func sourceOf(k *Key) srcKey {
	s := srcKey{addr: k.Src, fam: k.Family}
	if k.Family == 6 {
		clear(s.addr[8:])
	}
	return s
}

func (t *Table) srcShardOf(s *srcKey) *srcShard {
	le := binary.LittleEndian
	h := mix(le.Uint64(s.addr[:8])^t.seed[1], le.Uint64(s.addr[8:])^t.seed[2]^uint64(s.fam))
	return &t.srcs[h>>(64-shardBits)]
}

// replyKey is the key of the flow's reply direction. Without NAT it is the
// inverse tuple; ICMP echo keeps its identifier in SrcPort both ways.
func replyKey(k *Key) Key {
	r := Key{Src: k.Dst, Dst: k.Src, Proto: k.Proto, Family: k.Family}
	if isICMP(k.Proto) {
		r.SrcPort = k.SrcPort
	} else {
		r.SrcPort, r.DstPort = k.DstPort, k.SrcPort
	}
	return r
}

// keyEq is a == b field by field, which the compiler inlines (struct ==
// calls memequal for the 38 bytes).
func keyEq(a, b *Key) bool {
	return a.Src == b.Src && a.Dst == b.Dst && a.SrcPort == b.SrcPort && a.DstPort == b.DstPort &&
		a.Proto == b.Proto && a.Family == b.Family
}

// isReplyOf reports whether k == replyKey(o) without building it.
func isReplyOf(k, o *Key) bool {
	if k.Proto != o.Proto || k.Family != o.Family || k.Src != o.Dst || k.Dst != o.Src {
		return false
	}
	if isICMP(k.Proto) {
		return k.SrcPort == o.SrcPort && k.DstPort == 0
	}
	return k.SrcPort == o.DstPort && k.DstPort == o.SrcPort
}

// lookup is find that removes and misses an expired entry.
func (s *shard) lookup(t *Table, k *Key, h uint64, now int64) (uint32, Dir, bool) {
	slot, dir, ok := s.find(k, h)
	if !ok {
		return 0, 0, false
	}
	if now >= s.at(slot).deadline {
		s.remove(t, slot, reasonExpired)
		s.ctr[cExpired]++
		return 0, 0, false
	}
	return slot, dir, true
}

// remove frees slot and releases its table, half-open and source
// reservations. Called with s.mu held; takes a source shard lock (order:
// flow shard, then source shard).
func (s *shard) remove(t *Table, slot uint32, why DestroyReason) {
	s.evict(t, slot, false, why)
	t.count.Add(-1)
}

// evict is remove except that the flow's place in count (and with
// keepHalf its half-open place) is handed to the caller, who is about to
// insert a flow in its stead.
func (s *shard) evict(t *Table, slot uint32, keepHalf bool, why DestroyReason) {
	e := s.at(slot)
	if t.ev.active() {
		t.ev.emit(t, EventDestroy, e, why, 0)
	}
	if t.onDestroy != nil {
		t.onDestroy(e.key, why)
	}
	unreplied := e.flags&eSeenReply == 0
	if l := listOf(e); l >= 0 {
		s.unlink(l, slot)
	}
	if unreplied && !keepHalf {
		t.halfOpen.Add(-1)
	}
	src := sourceOf(&e.key)
	free := e.flags&eSourceFree != 0
	s.vacate(slot)
	s.live--
	switch {
	case !free:
		t.releaseSource(&src, unreplied)
	case unreplied:
		t.releaseHalf(&src)
	}
}

// seeReply marks the first packet of the reply direction, at now: the flow
// stops counting as half-open and moves to the end of the replied list.
func (s *shard) seeReply(t *Table, slot uint32, e *entry, now int64) {
	wasListed := e.flags&eAssured == 0
	if wasListed {
		s.unlink(listUnreplied, slot)
	}
	e.flags |= eSeenReply
	if wasListed {
		s.pushBack(listReplied, slot, now)
	}
	t.halfOpen.Add(-1)
	src := sourceOf(&e.key)
	t.releaseHalf(&src)
}

func (s *shard) setAssured(t *Table, slot uint32, e *entry, now int64) {
	if e.flags&eAssured == 0 {
		if l := listOf(e); l >= 0 {
			s.unlink(l, slot)
		}
		e.flags |= eAssured
		if t.ev.active() {
			t.ev.emit(t, EventUpdate, e, 0, now)
		}
	}
}

// reserveSource takes a place among the source's flows and half-open
// flows.
func (t *Table) reserveSource(src *srcKey) error {
	ss := t.srcShardOf(src)
	ss.mu.Lock()
	defer ss.mu.Unlock()
	c := ss.n[*src]
	if c.flows >= t.maxPerSource {
		return ErrSourceLimit
	}
	if c.half >= t.maxHalfPerSrc {
		return ErrHalfOpenLimit
	}
	ss.n[*src] = srcCount{c.flows + 1, c.half + 1}
	return nil
}

func (t *Table) releaseSource(src *srcKey, half bool) {
	ss := t.srcShardOf(src)
	ss.mu.Lock()
	c := ss.n[*src]
	c.flows--
	if half {
		c.half--
	}
	// A closed flow gives its place back before it is removed (eSourceFree),
	// so a source may hold unreplied places with no live flow counted.
	if c.flows > 0 || c.half > 0 {
		ss.n[*src] = c
	} else {
		delete(ss.n, *src)
	}
	ss.mu.Unlock()
}

func (t *Table) releaseHalf(src *srcKey) {
	ss := t.srcShardOf(src)
	ss.mu.Lock()
	if c, ok := ss.n[*src]; ok {
		c.half--
		if c.flows > 0 || c.half > 0 {
			ss.n[*src] = c
		} else {
			delete(ss.n, *src)
		}
	}
	ss.mu.Unlock()
}

// evictOldest evicts the oldest flow on list l across the table, like
// Linux's early_drop but exact: each shard publishes the creation time of
// its lists' heads, so one pass over 64 atomics finds the victim. Assured
// flows are never evicted. On success the victim's place in count (and
// with keepHalf its half-open place) belongs to the caller.
func (t *Table) evictOldest(l int, keepHalf bool) bool {
	for range 4 { // retry when a racing remove empties the chosen shard
		best, bestT := -1, int64(math.MaxInt64)
		for i := range t.shards {
			if o := t.shards[i].oldest[l].Load(); o < bestT {
				best, bestT = i, o
			}
		}
		if best < 0 {
			return false
		}
		s := &t.shards[best]
		s.mu.Lock()
		if s.head[l] != 0 {
			s.evict(t, s.nodes[s.head[l]].slot, keepHalf, reasonEvicted)
			s.ctr[cEarlyDrop]++
			s.mu.Unlock()
			return true
		}
		s.ctr[cSearchRestart]++
		s.mu.Unlock()
	}
	return false
}

// earlyDrop makes room in a full table: the oldest unreplied flow, else
// the unassured flow whose reply came longest ago.
func (t *Table) earlyDrop() bool {
	return t.evictOldest(listUnreplied, false) || t.evictOldest(listReplied, false)
}

// Len is the number of flows in the table, expired ones not yet swept and
// Commits in progress included. It never exceeds max_flows.
func (t *Table) Len() int { return int(t.count.Load()) }

// HalfOpen is the number of unreplied flows (Commits in progress
// included). It never exceeds max_half_open of max_flows.
func (t *Table) HalfOpen() int { return int(t.halfOpen.Load()) }

// Delete removes the flow k belongs to (either direction).
func (t *Table) Delete(k Key) bool {
	h := t.hash(&k)
	s := t.shardFor(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	slot, _, ok := s.find(&k, h)
	if !ok {
		return false
	}
	s.remove(t, slot, reasonDeleted)
	s.ctr[cRemoved]++
	return true
}

// SetVerdict replaces the cached verdict of the flow k belongs to (either
// direction), for example once a pending L7 decision is made.
func (t *Table) SetVerdict(k Key, v Verdict) bool {
	now := t.now()
	h := t.hash(&k)
	s := t.shardFor(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	slot, _, ok := s.lookup(t, &k, h, now)
	if ok {
		e := s.at(slot)
		e.verdict = v
		if t.ev.active() {
			t.ev.emit(t, EventUpdate, e, 0, now)
		}
	}
	return ok
}
