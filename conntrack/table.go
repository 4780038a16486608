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
}

const (
	shardBits = 6
	numShards = 1 << shardBits
	cacheLine = 64
)

// Table is the flow table. It is safe for concurrent use.
//
// Layout. Each of 64 shards holds an arena of pointer-free entries in
// fixed-size chunks and an open-addressing hash index over it: one uint64
// per flow, the low 32 bits of the flow's hash beside its slot number. The
// hash is seeded and symmetric (a flow's two keys hash alike), so one index
// word serves both directions, the shard is picked from the same hash, one
// mutex covers a flow as one bucket lock does in Linux, and a packet's key
// is hashed once. The garbage collector sees a few thousand chunk pointers
// and no per-flow pointer at all.
//
// Why not map[Key]uint32: it stored each 40-byte key twice more (once per
// direction) and hashed the key again inside the map: 302 heap bytes per
// flow and ~565 ns for a cache-cold lookup at 1M flows. The index costs
// 8-16 bytes per flow and one cache miss before the entry's.
//
// Why an arena rather than entries by value in a map: every tracked packet
// mutates its entry; with values in a map that is a lookup plus a store of
// the whole entry. BenchmarkStorageChoice measures the two.
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
)

// entry is one flow. It holds no pointers (see Table). Fields are ordered
// to leave no padding (168 bytes) and so that what every packet touches
// (key, deadline, counters) comes first, in two cache lines; TCP state
// follows.
type entry struct {
	key        Key // original direction; the reply key is derived (replyKey)
	tcp        TCPState
	flags      uint8
	verdict    Verdict
	deadline   int64 // ns since Table.epoch; expired when now >= deadline
	created    int64 // ns since Table.epoch
	packets    [2]uint64
	bytes      [2]uint64
	hash       uint32 // low 32 bits of the flow hash: the index tag
	prev, next uint32 // unassured list links (or free list); 0 is the sentinel slot
	conn       tcpConn
}

const (
	chunkBits = 8
	chunkSize = 1 << chunkBits
)

// Unassured entries sit on one of two lists, oldest first; early drop
// evicts from the heads, unreplied flows first.
const (
	listUnreplied = 0
	listReplied   = 1 // replied, not yet assured
)

type shard struct {
	// mu guards every field below except oldest, and every entry.
	mu     sync.Mutex
	index  []uint64 // hash32<<32 | slot; 0 is empty
	nIndex int
	// chunks are the arena, chunkSize entries each: growing it never
	// copies entries. Slices rather than pointers to arrays, so finding
	// an entry reads the slice header (hot) and never the chunk's first
	// line, which the nil check of a pointer does: a second cache and TLB
	// miss per cold lookup (11% of BenchmarkLookupCold1M's samples).
	chunks [][]entry
	// minDeadline[i] is at or below every live entry's deadline in
	// chunks[i]: lowered whenever a deadline is set lower, made exact by
	// the sweeper, which skips a chunk whose bound lies ahead. Dense
	// beside chunks, not in them, so the packet path's check stays on one
	// hot cache line instead of a page of its own per chunk.
	minDeadline []int64
	nslots      uint32 // slots handed out so far; slot 0 is a sentinel
	free        uint32 // head of the free slots, linked through entry.next

	head, tail [2]uint32
	// oldest[l] is the creation time of list l's head, or MaxInt64 when
	// empty. Written under mu, read without it by evictOldest to pick a
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
	ns := func(d interface{ D() time.Duration }) int64 { return max(1, int64(d.D())) }
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
		s.nslots = 1
		s.oldest[0].Store(math.MaxInt64)
		s.oldest[1].Store(math.MaxInt64)
		t.srcs[i].n = make(map[srcKey]srcCount)
	}
	return t
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

// shardOf is the shard k's flow lives in.
func (t *Table) shardOf(k *Key) *shard { return t.shardFor(t.hash(k)) }

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

func (s *shard) at(slot uint32) *entry {
	return &s.chunks[slot>>chunkBits][slot&(chunkSize-1)]
}

// setDeadline sets e's deadline, keeping its chunk's lower bound.
func (s *shard) setDeadline(slot uint32, e *entry, d int64) {
	e.deadline = d
	if m := &s.minDeadline[slot>>chunkBits]; d < *m {
		*m = d
	}
}

// find locates k with flow hash h under s.mu: the slot of its flow and the
// direction k travels in it.
func (s *shard) find(k *Key, h uint64) (uint32, Dir, bool) {
	if s.nIndex == 0 {
		return 0, 0, false
	}
	h32 := uint32(h)
	mask := uint32(len(s.index) - 1)
	for i := h32 & mask; ; i = (i + 1) & mask {
		v := s.index[i]
		if v == 0 {
			return 0, 0, false
		}
		if uint32(v>>32) != h32 {
			continue
		}
		slot := uint32(v)
		e := s.at(slot)
		if keyEq(&e.key, k) {
			return slot, DirOriginal, true
		}
		if isReplyOf(k, &e.key) {
			return slot, DirReply, true
		}
	}
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

func (s *shard) indexAdd(h32, slot uint32) {
	if (s.nIndex+1)*4 > len(s.index)*3 {
		s.growIndex()
	}
	mask := uint32(len(s.index) - 1)
	i := h32 & mask
	for s.index[i] != 0 {
		i = (i + 1) & mask
	}
	s.index[i] = uint64(h32)<<32 | uint64(slot)
	s.nIndex++
}

func (s *shard) growIndex() {
	old := s.index
	s.index = make([]uint64, max(16, 2*len(old)))
	mask := uint32(len(s.index) - 1)
	for _, v := range old {
		if v == 0 {
			continue
		}
		i := uint32(v>>32) & mask
		for s.index[i] != 0 {
			i = (i + 1) & mask
		}
		s.index[i] = v
	}
}

// indexDel removes slot's word, shifting later members of its run back
// so lookups never need tombstones (linear probing deletion).
func (s *shard) indexDel(h32, slot uint32) {
	mask := uint32(len(s.index) - 1)
	want := uint64(h32)<<32 | uint64(slot)
	i := h32 & mask
	for s.index[i] != want {
		i = (i + 1) & mask
	}
	for j := i; ; {
		j = (j + 1) & mask
		v := s.index[j]
		if v == 0 {
			break
		}
		home := uint32(v>>32) & mask
		// v stays unless its home lies cyclically outside (i, j].
		if (i <= j && i < home && home <= j) || (i > j && (i < home || home <= j)) {
			continue
		}
		s.index[i] = v
		i = j
	}
	s.index[i] = 0
	s.nIndex--
}

func (s *shard) allocSlot() uint32 {
	if slot := s.free; slot != 0 {
		s.free = s.at(slot).next
		return slot
	}
	slot := s.nslots
	if int(slot>>chunkBits) == len(s.chunks) {
		s.chunks = append(s.chunks, make([]entry, chunkSize))
		s.minDeadline = append(s.minDeadline, math.MaxInt64)
	}
	s.nslots++
	return slot
}

// insert stores e and indexes it. Called with s.mu held.
func (s *shard) insert(e *entry) uint32 {
	slot := s.allocSlot()
	p := s.at(slot)
	*p = *e
	s.setDeadline(slot, p, p.deadline)
	s.indexAdd(p.hash, slot)
	if l := listOf(p); l >= 0 {
		s.pushBack(l, slot)
	}
	s.live++
	return slot
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
	s.indexDel(e.hash, slot)
	unreplied := e.flags&eSeenReply == 0
	if l := listOf(e); l >= 0 {
		s.unlink(l, slot)
	}
	if unreplied && !keepHalf {
		t.halfOpen.Add(-1)
	}
	src := sourceOf(&e.key)
	*e = entry{next: s.free}
	s.free = slot
	s.live--
	t.releaseSource(&src, unreplied)
}

// listOf is the unassured list e belongs on, or -1.
func listOf(e *entry) int {
	switch {
	case e.flags&eAssured != 0:
		return -1
	case e.flags&eSeenReply != 0:
		return listReplied
	}
	return listUnreplied
}

func (s *shard) pushBack(l int, slot uint32) {
	e := s.at(slot)
	e.prev, e.next = s.tail[l], 0
	if s.tail[l] != 0 {
		s.at(s.tail[l]).next = slot
	} else {
		s.head[l] = slot
		s.oldest[l].Store(e.created)
	}
	s.tail[l] = slot
}

func (s *shard) unlink(l int, slot uint32) {
	e := s.at(slot)
	if e.prev != 0 {
		s.at(e.prev).next = e.next
	} else {
		s.head[l] = e.next
		if s.head[l] != 0 {
			s.oldest[l].Store(s.at(s.head[l]).created)
		} else {
			s.oldest[l].Store(math.MaxInt64)
		}
	}
	if e.next != 0 {
		s.at(e.next).prev = e.prev
	} else {
		s.tail[l] = e.prev
	}
	e.prev, e.next = 0, 0
}

// seeReply marks the first packet of the reply direction: the flow stops
// counting as half-open and moves to the replied list.
func (s *shard) seeReply(t *Table, slot uint32, e *entry) {
	wasListed := e.flags&eAssured == 0
	if wasListed {
		s.unlink(listUnreplied, slot)
	}
	e.flags |= eSeenReply
	if wasListed {
		s.pushBack(listReplied, slot)
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
	if c.flows > 0 {
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
		ss.n[*src] = c
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
			s.evict(t, s.head[l], keepHalf, reasonEvicted)
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
// the oldest replied but unassured one.
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
