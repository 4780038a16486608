package stack

import "github.com/tungate/tungate/conntrack"

// txBatchSize is how many packets one Device.Write carries at most.
const txBatchSize = 64

// txBatch is a reusable set of packet buffers for writing to the TUN, so
// the outbound path allocates nothing per packet once the pool is warm.
type txBatch struct {
	mem  []byte              // txBatchSize buffers of mtu bytes, back to back
	mtu  int                 //
	out  [txBatchSize][]byte // the packets of this batch, views into mem
	n    int
	hash uint32 // flow hash of the batch's first packet: picks the device
}

func (t *txBatch) slot(i int) []byte {
	if i >= txBatchSize {
		return nil
	}
	return t.mem[i*t.mtu : (i+1)*t.mtu]
}

func (t *txBatch) add(size int) {
	t.out[t.n] = t.slot(t.n)[:size]
	t.n++
}

func (t *txBatch) full() bool { return t.n == txBatchSize }

func (s *Stack) getTx() *txBatch {
	if v := s.txPool.Get(); v != nil {
		t := v.(*txBatch)
		t.n = 0
		return t
	}
	return &txBatch{mem: make([]byte, txBatchSize*s.mtu), mtu: s.mtu}
}

func (s *Stack) putTx(t *txBatch) { s.txPool.Put(t) }

// flushTx writes the batch to one device: a batch normally holds one
// endpoint's output, and one queue keeps its packets in order.
func (s *Stack) flushTx(t *txBatch) {
	if t.n == 0 {
		return
	}
	d := s.devs[int(t.hash%uint32(len(s.devs)))]
	n, err := d.Write(t.out[:t.n], 0)
	for i := range n {
		s.ctr.txBytes.Add(uint64(len(t.out[i])))
	}
	s.ctr.txPackets.Add(uint64(n))
	if err != nil {
		s.ctr.txErrors.Add(uint64(t.n - n))
	}
	t.n = 0
}

// writeOne writes one synthesized packet (reject, echo reply), which must
// be at most mtu bytes.
func (s *Stack) writeOne(b []byte, k *conntrack.Key) {
	t := s.getTx()
	defer s.putTx(t)
	if len(b) > s.mtu {
		s.ctr.txErrors.Add(1)
		return
	}
	copy(t.slot(0), b)
	t.hash = flowHash(k)
	t.add(len(b))
	s.flushTx(t)
}

// flowHash spreads flows over devices. It is symmetric, so both directions
// of a flow choose the same queue.
func flowHash(k *conntrack.Key) uint32 {
	var h uint32
	for i := 0; i < 16; i += 4 {
		h ^= uint32(k.Src[i])<<24 | uint32(k.Src[i+1])<<16 | uint32(k.Src[i+2])<<8 | uint32(k.Src[i+3])
		h ^= uint32(k.Dst[i])<<24 | uint32(k.Dst[i+1])<<16 | uint32(k.Dst[i+2])<<8 | uint32(k.Dst[i+3])
	}
	h ^= uint32(k.SrcPort ^ k.DstPort)
	h ^= h >> 16
	h *= 0x45d9f3b
	h ^= h >> 16
	return h
}
