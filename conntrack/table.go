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
// is hashed once. The garbage collector sees a few thousand chunk slices
// and no per-flow pointer at all.
//
// Home slots. Reaching an entry through the index costs two dependent
// cache misses (the index word, then the entry). So each flow also has two
// home slots in the arena, picked by its hash, and is placed in one when it
// can be (allocSlot, makeRoom); a lookup reads both homes' tags and the
// index word at once and finds most flows (TestHomeSlots: ~85%) with one
// miss, the rest through the index word already loaded. The arena keeps
// 10-30% of its slots free for that (homeLoadMax, homeGrowth); growing it
// moves every flow's homes, and the sweeper re-places flows chunk by chunk
// afterwards rather than the inserting packet paying for the whole shard.
//
// Why not map[Key]uint32: it stored each 40-byte key twice more (once per
// direction) and hashed the key again inside the map: 302 heap bytes per
// flow and ~565 ns for a cache-cold lookup at 1M flows.
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
// to leave no padding (168 bytes) and so that what a lookup at a home slot
// reads (key, hash, flags) and most of what a packet changes (deadline,
// counters) come first; TCP state follows.
type entry struct {
	key      Key // original direction; the reply key is derived (replyKey)
	tcp      TCPState
	flags    uint8
	hash     uint32 // low 32 bits of the flow hash: the index tag
	verdict  Verdict
	next     uint32 // unassured list links; 0 is the sentinel slot
	deadline int64  // ns since Table.epoch; expired when now >= deadline
	packets  [2]uint64
	bytes    [2]uint64
	created  int64 // ns since Table.epoch
	prev     uint32
	conn     tcpConn
}

const (
	chunkBits = 8
	chunkSize = 1 << chunkBits
)

// homeLoadMax is the arena's load (live entries per slot) above which it
// grows, by homeGrowth of its size: the spare slots are what lets most
// flows sit at one of their home slots, and at most 168/0.9*1.2 bytes of
// arena per flow keep TestMemoryPerEntry under 256.
const (
	homeLoadMax = 0.9
	homeGrowth  = 0.2
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
	// line, which a nil check of a pointer would.
	chunks [][]entry
	// minDeadline[i] is at or below every live entry's deadline in
	// chunks[i]: lowered whenever a deadline is set lower, made exact by
	// the sweeper, which skips a chunk whose bound lies ahead. Dense
	// beside chunks, not in them, so the packet path's check stays on one
	// hot cache line instead of a page of its own per chunk.
	minDeadline []int64
	nslots      uint32   // slots in the arena; slot 0 is a sentinel
	freeMap     []uint64 // bit per slot, set when the slot is free
	freeCur     int      // word of freeMap where the search for any free slot resumes
	// grown counts arena growths. rehome is the number of sweeps over
	// the whole shard that still re-place flows (rehomeChunk) since the
	// last growth: two, as a second pass finds homes the first freed.
	grown  uint32
	rehome uint8

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

// homes are the two arena slots a flow with hash h prefers, from hash
// bits the shard and the index position do not use. A flow at a home is
// found from its hash alone: the lookup reads both homes and the index
// word at once, so it costs one cache miss instead of the index word's
// followed by the entry's. Called with s.nslots > 1.
func (s *shard) homes(h uint64) (uint32, uint32) {
	n := uint64(s.nslots - 1)
	a := (h >> 32 & (1<<26 - 1) * n) >> 26
	b := (uint64(uint32(h)*0x9e3779b1) * n) >> 32
	return 1 + uint32(a), 1 + uint32(b)
}

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

func (s *shard) isFree(slot uint32) bool { return s.freeMap[slot>>6]&(1<<(slot&63)) != 0 }
func (s *shard) take(slot uint32)        { s.freeMap[slot>>6] &^= 1 << (slot & 63) }
func (s *shard) release(slot uint32)     { s.freeMap[slot>>6] |= 1 << (slot & 63) }

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
	i := h32 & mask
	// Three independent loads, combined before any branch on them so the
	// compiler cannot sink one below a branch and the CPU overlaps their
	// misses: the index word and both homes' tags.
	v := s.index[i]
	a, b := s.homes(h)
	ea, eb := s.at(a), s.at(b)
	hit := b2u(ea.hash == h32) | b2u(eb.hash == h32)<<1 | b2u(v == 0)<<2
	if hit&1 != 0 && ea.flags&eInUse != 0 {
		if keyEq(&ea.key, k) {
			return a, DirOriginal, true
		}
		if isReplyOf(k, &ea.key) {
			return a, DirReply, true
		}
	}
	if hit&2 != 0 && eb.flags&eInUse != 0 {
		if keyEq(&eb.key, k) {
			return b, DirOriginal, true
		}
		if isReplyOf(k, &eb.key) {
			return b, DirReply, true
		}
	}
	for ; v != 0; i = (i + 1) & mask {
		v = s.index[i]
		if v == 0 {
			break
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
	return 0, 0, false
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

// allocSlot takes a free slot for a flow with hash h: a free home, else a
// home held by a flow that is not at one of its own homes (that flow
// moves to any free slot), else any free slot. Called with s.mu held.
func (s *shard) allocSlot(t *Table, h uint64) uint32 {
	if float64(s.live+1) > homeLoadMax*float64(max(s.nslots, 1)-1) {
		s.grow()
	}
	a, b := s.homes(h)
	switch {
	case s.isFree(a):
		s.take(a)
		return a
	case s.isFree(b):
		s.take(b)
		return b
	}
	if x, to, ok := s.makeRoom(t, a, b); ok {
		s.move(x, to)
		s.take(x)
		return x
	}
	return s.anySlot()
}

// makeRoom picks, when both homes a and b of a flow are taken, one whose
// occupant can move: to its other home if that is free, else anywhere
// when it is not at a home of its own. It reports the home to free and
// where its occupant goes (already taken).
func (s *shard) makeRoom(t *Table, a, b uint32) (x, to uint32, ok bool) {
	var alt [2]uint32
	for i, x := range [2]uint32{a, b} {
		// The lookup that preceded this insert read both homes: their
		// keys are in cache.
		xa, xb := s.homes(t.hash(&s.at(x).key))
		switch x {
		case xa:
			alt[i] = xb
		case xb:
			alt[i] = xa
		default: // not at a home: to one of its own if free, else anywhere
			to := xa
			if !s.isFree(to) {
				to = xb
			}
			if !s.isFree(to) {
				return x, s.anySlot(), true
			}
			s.take(to)
			return x, to, true
		}
	}
	for i, x := range [2]uint32{a, b} {
		if s.isFree(alt[i]) {
			s.take(alt[i])
			return x, alt[i], true
		}
	}
	return 0, 0, false
}

// anySlot takes the free slot the search from freeCur meets first.
func (s *shard) anySlot() uint32 {
	for {
		if s.freeCur >= len(s.freeMap) {
			s.freeCur = 0
		}
		if w := s.freeMap[s.freeCur]; w != 0 {
			slot := uint32(s.freeCur<<6 | bits.TrailingZeros64(w))
			s.take(slot)
			return slot
		}
		s.freeCur++
	}
}

// grow adds homeGrowth to the arena. That moves every flow's homes; the
// flows stay where they are (found through the index meanwhile) and the
// sweeper moves them to new homes chunk by chunk (rehomeChunk), so growth
// never holds the lock for a pass over the shard.
func (s *shard) grow() {
	for range max(1, int(float64(len(s.chunks))*homeGrowth)) {
		s.chunks = append(s.chunks, make([]entry, chunkSize))
		s.minDeadline = append(s.minDeadline, math.MaxInt64)
		for range chunkSize / 64 {
			s.freeMap = append(s.freeMap, math.MaxUint64)
		}
	}
	s.take(0) // the sentinel
	s.nslots = uint32(len(s.chunks) * chunkSize)
	s.grown++
	s.rehome = 2
}

// rehomeChunk moves chunk ci's flows that are not at one of their homes
// to one, where one is free or can be made free (makeRoom). Called with
// s.mu held.
func (s *shard) rehomeChunk(t *Table, ci int) {
	for i := range chunkSize {
		slot := uint32(ci<<chunkBits | i)
		e := s.at(slot)
		if e.flags&eInUse == 0 {
			continue
		}
		a, b := s.homes(t.hash(&e.key))
		switch {
		case slot == a || slot == b:
		case s.isFree(a):
			s.move(slot, a)
		case s.isFree(b):
			s.move(slot, b)
		default:
			if x, to, ok := s.makeRoom(t, a, b); ok {
				s.move(x, to)
				s.move(slot, x)
			}
		}
	}
}

// move moves the entry at from to the free slot to, relinking its index
// word and list neighbours.
func (s *shard) move(from, to uint32) {
	e := s.at(to)
	*e = *s.at(from)
	*s.at(from) = entry{}
	s.release(from)
	s.take(to)
	mask := uint32(len(s.index) - 1)
	want := uint64(e.hash)<<32 | uint64(from)
	i := e.hash & mask
	for s.index[i] != want {
		i = (i + 1) & mask
	}
	s.index[i] = uint64(e.hash)<<32 | uint64(to)
	if l := listOf(e); l >= 0 {
		if e.prev != 0 {
			s.at(e.prev).next = to
		} else {
			s.head[l] = to
		}
		if e.next != 0 {
			s.at(e.next).prev = to
		} else {
			s.tail[l] = to
		}
	}
	if m := &s.minDeadline[to>>chunkBits]; e.deadline < *m {
		*m = e.deadline
	}
}

// insert stores e, whose flow hash is h, and indexes it. Called with s.mu
// held.
func (s *shard) insert(t *Table, e *entry, h uint64) uint32 {
	slot := s.allocSlot(t, h)
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
	*e = entry{}
	s.release(slot)
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
