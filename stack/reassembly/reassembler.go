package reassembly

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// shardBits sets the number of shards: enough that the readers of a
// multi-queue TUN, each on its own datagrams, rarely wait for each other.
const (
	shardBits = 4
	numShards = 1 << shardBits
)

// Reassembler holds incomplete datagrams until their last fragment
// arrives. It is safe for concurrent use: datagrams are sharded by key,
// and only eviction under memory pressure reaches into another shard.
type Reassembler struct {
	budget  int64 // Config.Memory
	timeout int64 // Config.Timeout, in clock units
	now     func() time.Time
	base    time.Time // clock zero, so deadlines are small integers with now's monotonic reading
	seed    uint64    // shard hash seed: a sender cannot aim its datagrams at one shard

	seq    atomic.Uint64             // datagram creation order, shared by the shards so "oldest" means one thing
	mem    atomic.Int64              // bytes charged by every shard; never above budget (tryCharge)
	atomic atomic.Uint64             // atomic fragments passed through
	early  [NumReasons]atomic.Uint64 // fragments refused before reaching a shard, by what parse found

	shards [numShards]shard
}

// shard is one slice of the datagrams.
type shard struct {
	// mu guards every field below but idx (set once) and oldest. Lock
	// order: while holding its own shard a goroutine may wait for a
	// shard with a higher index and only try (TryLock) one with a lower,
	// so evictors in two shards never wait for each other (evictOldest).
	mu     sync.Mutex
	idx    int
	m      map[key]*datagram
	head   *datagram // oldest
	tail   *datagram
	oldest atomic.Uint64 // head's seq, math.MaxUint64 when empty: read by other shards' evictors without mu
	n      counters
	_      [64]byte // keeps one shard's hot fields off its neighbour's cache line
}

// New returns a Reassembler for cfg, after Defaults; now is the clock
// (nil: time.Now). It takes the values as they are, so a test can give a
// budget below Validate's minimum.
func New(cfg Config, now func() time.Time) *Reassembler {
	cfg.Defaults()
	if now == nil {
		now = time.Now
	}
	r := &Reassembler{
		budget:  int64(cfg.Memory),
		timeout: int64(cfg.Timeout.D()),
		now:     now,
		base:    now(),
		seed:    rand.Uint64(),
	}
	for i := range r.shards {
		s := &r.shards[i]
		s.idx = i
		s.m = make(map[key]*datagram)
		s.oldest.Store(math.MaxUint64)
	}
	return r
}

func (r *Reassembler) clock() int64 { return int64(r.now().Sub(r.base)) }

// Add takes one fragment b, a whole IP packet whose header length and
// IPv4 header checksum the caller has checked, and copies from it what it
// keeps: b may be reused as soon as Add returns. When b completes its
// datagram, Add writes the unfragmented packet to out[:n] and returns
// Complete; an IPv6 atomic fragment (RFC 6946) is complete by itself.
// Otherwise the fragment is Held, or Dropped for why, for some reasons
// with the whole datagram (Reason.DiscardsDatagram).
//
// out must have room for MaxDatagram bytes and must not overlap b; Add
// panics otherwise, on every call, so the mistake shows before the first
// large datagram.
func (r *Reassembler) Add(b, out []byte) (n int, res Result, why Reason) {
	if len(out) < MaxDatagram {
		panic("reassembly: Add needs an out of at least MaxDatagram bytes")
	}
	var f fragment
	if why = parse(b, &f); why != ReasonNone {
		if why.DiscardsDatagram() && f.key != (key{}) {
			// The fragment alone is proof enough (a datagram past 65,535
			// bytes): what its datagram already holds goes too, as Linux
			// kills the queue.
			s := r.shardFor(&f.key)
			s.mu.Lock()
			defer s.mu.Unlock()
			s.n.fragments++
			s.discard(r, &f, why, r.clock())
			return 0, Dropped, why
		}
		r.early[why].Add(1)
		return 0, Dropped, why
	}
	if f.atomic {
		r.atomic.Add(1)
		return writeAtomic(out, &f), Complete, ReasonNone
	}
	s := r.shardFor(&f.key)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.add(r, &f, out, r.clock())
}

func (s *shard) add(r *Reassembler, f *fragment, out []byte, now int64) (int, Result, Reason) {
	s.n.fragments++
	s.expire(r, now)
	d := s.m[f.key]
	if d != nil && d.deadline <= now {
		s.drop(r, d, ReasonTimeout) // a clock that went back left it behind the head
		d = nil
	}
	if d == nil {
		d = newDatagram(f.key)
	}
	if d.dead != ReasonNone {
		s.n.fragmentsDropped[d.dead]++
		return 0, Dropped, d.dead
	}
	i, why := d.place(f)
	if why == ReasonNone && !d.completes(f) && len(d.frags) >= maxFragments {
		why = ReasonTooManyFragments
	}
	switch {
	case why.DiscardsDatagram():
		s.kill(r, d, why)
		return 0, Dropped, why
	case why != ReasonNone:
		s.n.fragmentsDropped[why]++
		return 0, Dropped, why
	case d.completes(f):
		n := d.assemble(out, f)
		s.complete(r, d)
		return n, Complete, ReasonNone
	}
	extra := int64(fragOverhead)
	if !d.listed {
		extra += datagramOverhead
	}
	if !r.makeRoom(s, d, len(d.data)+f.stored(), extra) {
		s.n.fragmentsDropped[ReasonMemory]++
		return 0, Dropped, ReasonMemory
	}
	if !d.listed {
		d.seq = r.seq.Add(1)
		d.deadline = now + r.timeout
		s.push(d)
	}
	d.insert(i, f)
	s.n.held++
	return 0, Held, ReasonNone
}

// discard kills the datagram f belongs to for why when one is held (a
// tombstone then refuses its other fragments until its timeout); with
// none, only f is dropped, as Linux does.
func (s *shard) discard(r *Reassembler, f *fragment, why Reason, now int64) {
	s.expire(r, now)
	d := s.m[f.key]
	switch {
	case d == nil:
		s.n.fragmentsDropped[why]++
	case d.dead != ReasonNone:
		s.n.fragmentsDropped[d.dead]++
	default:
		s.kill(r, d, why)
	}
}

// kill discards d's data for why and leaves it a tombstone. A datagram
// not yet listed held nothing: only the fragment in hand is dropped.
func (s *shard) kill(r *Reassembler, d *datagram, why Reason) {
	s.n.fragmentsDropped[why]++
	if !d.listed {
		return
	}
	s.n.fragmentsDropped[why] += uint64(len(d.frags))
	s.n.datagramsDropped[why]++
	s.n.held -= len(d.frags)
	s.n.inProgress--
	s.n.tombstones++
	r.release(d.cost - datagramOverhead)
	d.cost = datagramOverhead
	d.frags, d.data, d.dead = nil, nil, why
}

// complete forgets d, just assembled.
func (s *shard) complete(r *Reassembler, d *datagram) {
	s.n.reassembled++
	s.n.fragmentsReassembled += uint64(len(d.frags)) + 1
	if d.listed {
		s.n.held -= len(d.frags)
		s.n.inProgress--
		s.unlink(r, d)
	}
}

// drop forgets d for why (timeout or memory), counting what it held; a
// tombstone held nothing and goes uncounted.
func (s *shard) drop(r *Reassembler, d *datagram, why Reason) {
	if d.dead == ReasonNone {
		s.n.fragmentsDropped[why] += uint64(len(d.frags))
		s.n.datagramsDropped[why]++
		s.n.held -= len(d.frags)
		s.n.inProgress--
	} else {
		s.n.tombstones--
	}
	s.unlink(r, d)
}

// push lists d, new, as the shard's youngest.
func (s *shard) push(d *datagram) {
	s.m[d.key] = d
	d.listed = true
	s.n.inProgress++
	d.prev = s.tail
	if s.tail != nil {
		s.tail.next = d
	} else {
		s.head = d
		s.oldest.Store(d.seq)
	}
	s.tail = d
}

// unlink removes d from the shard and returns its memory.
func (s *shard) unlink(r *Reassembler, d *datagram) {
	delete(s.m, d.key)
	if d.prev != nil {
		d.prev.next = d.next
	} else {
		s.head = d.next
		if s.head != nil {
			s.oldest.Store(s.head.seq)
		} else {
			s.oldest.Store(math.MaxUint64)
		}
	}
	if d.next != nil {
		d.next.prev = d.prev
	} else {
		s.tail = d.prev
	}
	d.prev, d.next, d.listed = nil, nil, false
	r.release(d.cost)
	d.cost = 0
}

// shardFor picks k's shard with a seeded multiply-xorshift over the key:
// cheap, allocation-free, and not predictable from outside.
func (r *Reassembler) shardFor(k *key) *shard {
	h := r.seed ^ uint64(k.id) ^ uint64(k.proto)<<32
	for _, w := range [4]uint64{
		binary.LittleEndian.Uint64(k.src[:8]), binary.LittleEndian.Uint64(k.src[8:]),
		binary.LittleEndian.Uint64(k.dst[:8]), binary.LittleEndian.Uint64(k.dst[8:]),
	} {
		h = (h ^ w) * 0x9e3779b97f4a7c15
		h ^= h >> 29
	}
	return &r.shards[h>>(64-shardBits)]
}
