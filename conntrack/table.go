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
	ErrTableFull   = errors.New("conntrack: table full and no unassured flow to evict")
	ErrSourceLimit = errors.New("conntrack: too many flows from this source")
	ErrNotNew      = errors.New("conntrack: packet cannot open a flow")
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
// Layout. Each of 64 shards holds an index map[Key]uint32 from either
// direction's key to slot<<1|dir, and an arena []entry of pointer-free
// value structs. Both map and arena are therefore "noscan" memory: the
// garbage collector never walks a million flows. Both directions of a flow
// hash to the same shard (the shard hash is symmetric), so one mutex covers
// a flow, as one bucket lock does in Linux.
//
// Why an arena rather than map[Key]entry: every tracked packet mutates its
// entry. With entries stored by value in the map that is a lookup plus a
// store of a 104-byte value, two hashes of the 38-byte key; with the arena
// it is one lookup and an in-place update. The arena also gives stable
// slot numbers for the intrusive eviction list and the reply-key index
// without storing the entry twice. BenchmarkStorageChoice (64Ki flows, one
// packet's update, 2-core VM): 43 ns index+arena vs 184 ns map-by-value.
type Table struct {
	shards [numShards]shard
	srcs   [numShards]srcShard

	seed [3]uint64

	// count is live entries plus in-flight Commit reservations; it never
	// exceeds maxFlows (see reserveSlot).
	count        atomic.Int64
	maxFlows     int64
	maxPerSource int32

	tcpTimeout       [numTCPStates]int64 // nanoseconds
	udpTimeout       int64
	udpStreamTimeout int64
	icmpTimeout      int64

	epoch time.Time
	nowFn func() time.Time
	// coarse is the clock Run maintains, in ns since epoch; 0 when no Run
	// is active.
	coarse atomic.Int64
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

// entry is one flow. It holds no pointers (see Table).
type entry struct {
	key        Key // original direction; the reply key is derived (replyKey)
	tcp        TCPState
	flags      uint8
	verdict    Verdict
	prev, next uint32 // unassured FIFO links; 0 is the sentinel slot
	created    int64  // ns since Table.epoch
	deadline   int64  // ns since Table.epoch; expired when now >= deadline
	packets    [2]uint64
	bytes      [2]uint64
}

type shard struct {
	// mu guards index, entries, free, head and tail, and every field of
	// every entry in entries.
	mu      sync.Mutex
	index   map[Key]uint32
	entries []entry // slot 0 is a sentinel so 0 can mean "no slot"
	free    []uint32

	// head and tail list the unassured entries, oldest first: early drop
	// evicts from head.
	head, tail uint32
	// oldest is entries[head].created, or MaxInt64 when the list is empty.
	// Written under mu, read without it by early drop to pick a shard.
	oldest atomic.Int64
	live   atomic.Int64

	ctr [numCounters]atomic.Uint64

	_ [cacheLine]byte // keep neighbouring shards' locks off this line
}

type srcKey struct {
	addr [16]byte // IPv6 sources truncated to /64
	fam  uint8
}

type srcShard struct {
	mu sync.Mutex // guards n
	n  map[srcKey]int32
	_  [cacheLine]byte
}

// New returns an empty table. cfg should have had Defaults applied and
// passed Validate; out-of-range values are clamped to something usable.
func New(cfg Config, opts Options) *Table {
	cfg.Defaults()
	t := &Table{
		maxFlows:     int64(max(1, min(cfg.MaxFlows, maxMaxFlows))),
		maxPerSource: int32(max(1, min(cfg.MaxFlowsPerSource, math.MaxInt32))),
		nowFn:        opts.Now,
	}
	var b [24]byte
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
	t.udpTimeout = ns(to.UDP)
	t.udpStreamTimeout = ns(to.UDPStream)
	t.icmpTimeout = ns(to.ICMP)
	for i := range t.shards {
		s := &t.shards[i]
		s.index = make(map[Key]uint32)
		s.entries = make([]entry, 1)
		s.oldest.Store(math.MaxInt64)
		t.srcs[i].n = make(map[srcKey]int32)
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

// shardOf picks a key's shard with a hash that is symmetric in the two
// directions (addresses combined by addition, ports by sum) and keyed with
// a per-process random seed, so a flood of crafted tuples cannot pile onto
// one lock.
func (t *Table) shardOf(k *Key) *shard {
	le := binary.LittleEndian
	a := mix(le.Uint64(k.Src[:8])^t.seed[0], le.Uint64(k.Src[8:])^t.seed[1])
	b := mix(le.Uint64(k.Dst[:8])^t.seed[0], le.Uint64(k.Dst[8:])^t.seed[1])
	x := (uint64(k.SrcPort) + uint64(k.DstPort)) | uint64(k.Proto)<<32 | uint64(k.Family)<<40
	return &t.shards[mix(a+b, x^t.seed[2])>>(64-shardBits)]
}

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

// lookup finds k under s.mu. An expired entry is removed and not found.
func (s *shard) lookup(t *Table, k *Key, now int64) (uint32, Dir, bool) {
	v, ok := s.index[*k]
	if !ok {
		return 0, 0, false
	}
	slot := v >> 1
	if now >= s.entries[slot].deadline {
		s.remove(t, slot)
		s.ctr[cExpired].Add(1)
		return 0, 0, false
	}
	return slot, Dir(v & 1), true
}

// insert stores e and indexes both directions. Called with s.mu held.
func (s *shard) insert(e entry, rk *Key) uint32 {
	var slot uint32
	if n := len(s.free); n > 0 {
		slot = s.free[n-1]
		s.free = s.free[:n-1]
		s.entries[slot] = e
	} else {
		slot = uint32(len(s.entries))
		s.entries = append(s.entries, e)
	}
	s.index[e.key] = slot << 1
	if *rk != e.key {
		s.index[*rk] = slot<<1 | 1
	}
	if e.flags&eAssured == 0 {
		s.pushBack(slot)
	}
	s.live.Add(1)
	return slot
}

// remove frees slot and releases its table and source reservations.
// Called with s.mu held; takes a source shard lock (order: flow shard,
// then source shard).
func (s *shard) remove(t *Table, slot uint32) {
	s.evict(t, slot)
	t.count.Add(-1)
}

// evict is remove except that the flow's place in count is handed to the
// caller, who is about to insert a flow in its stead.
func (s *shard) evict(t *Table, slot uint32) {
	e := &s.entries[slot]
	delete(s.index, e.key)
	// Commit inserts a flow only when neither of its keys is indexed, so
	// the reply key, when distinct, is this slot's.
	if rk := replyKey(&e.key); rk != e.key {
		delete(s.index, rk)
	}
	if e.flags&eAssured == 0 {
		s.unlink(slot)
	}
	src := sourceOf(&e.key)
	*e = entry{}
	s.free = append(s.free, slot)
	s.live.Add(-1)
	t.releaseSource(&src)
}

func (s *shard) pushBack(slot uint32) {
	e := &s.entries[slot]
	e.prev, e.next = s.tail, 0
	if s.tail != 0 {
		s.entries[s.tail].next = slot
	} else {
		s.head = slot
		s.oldest.Store(e.created)
	}
	s.tail = slot
}

func (s *shard) unlink(slot uint32) {
	e := &s.entries[slot]
	if e.prev != 0 {
		s.entries[e.prev].next = e.next
	} else {
		s.head = e.next
		if s.head != 0 {
			s.oldest.Store(s.entries[s.head].created)
		} else {
			s.oldest.Store(math.MaxInt64)
		}
	}
	if e.next != 0 {
		s.entries[e.next].prev = e.prev
	} else {
		s.tail = e.prev
	}
	e.prev, e.next = 0, 0
}

func (s *shard) setAssured(slot uint32) {
	e := &s.entries[slot]
	if e.flags&eAssured == 0 {
		s.unlink(slot)
		e.flags |= eAssured
	}
}

func (t *Table) reserveSource(src *srcKey) bool {
	ss := t.srcShardOf(src)
	ss.mu.Lock()
	defer ss.mu.Unlock()
	n := ss.n[*src]
	if n >= t.maxPerSource {
		return false
	}
	ss.n[*src] = n + 1
	return true
}

func (t *Table) releaseSource(src *srcKey) {
	ss := t.srcShardOf(src)
	ss.mu.Lock()
	if n := ss.n[*src] - 1; n > 0 {
		ss.n[*src] = n
	} else {
		delete(ss.n, *src)
	}
	ss.mu.Unlock()
}

// earlyDrop evicts the oldest unassured flow in the table, like Linux's
// early_drop but exact: each shard publishes the creation time of its
// oldest unassured entry, so one pass over 64 atomics finds the victim.
// Assured flows are never evicted. On success the victim's place in count
// belongs to the caller.
func (t *Table) earlyDrop() bool {
	for range 4 { // retry when a racing remove empties the chosen shard
		best, bestT := -1, int64(math.MaxInt64)
		for i := range t.shards {
			if o := t.shards[i].oldest.Load(); o < bestT {
				best, bestT = i, o
			}
		}
		if best < 0 {
			return false
		}
		s := &t.shards[best]
		s.mu.Lock()
		if s.head != 0 {
			s.evict(t, s.head)
			s.ctr[cEarlyDrop].Add(1)
			s.mu.Unlock()
			return true
		}
		s.mu.Unlock()
	}
	return false
}

// Len is the number of flows in the table, expired ones not yet swept and
// Commits in progress included. It never exceeds max_flows.
func (t *Table) Len() int { return int(t.count.Load()) }

// Delete removes the flow k belongs to (either direction).
func (t *Table) Delete(k Key) bool {
	s := t.shardOf(&k)
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.index[k]
	if !ok {
		return false
	}
	s.remove(t, v>>1)
	s.ctr[cRemoved].Add(1)
	return true
}

// SetVerdict replaces the cached verdict of the flow k belongs to (either
// direction), for example once a pending L7 decision is made.
func (t *Table) SetVerdict(k Key, v Verdict) bool {
	now := t.now()
	s := t.shardOf(&k)
	s.mu.Lock()
	defer s.mu.Unlock()
	slot, _, ok := s.lookup(t, &k, now)
	if ok {
		s.entries[slot].verdict = v
	}
	return ok
}
