package conntrack

import "math"

// Unassured flows sit on one of two lists per shard, oldest first; early
// drop evicts from the heads, unreplied flows first. The unreplied list is
// in order of creation, the replied list in order of first reply (a flow
// joins its end when the reply comes), and each node carries that time,
// so every list is sorted by the key evictOldest compares across shards. The links live in
// dense nodes beside the table rather than in the entries, because
// entries move (deletion shifts them back, growth re-places them): a move
// then updates one node's slot instead of two neighbours' links, and an
// assured flow, the common kind in a busy table, costs no node at all.
const (
	listUnreplied = 0
	listReplied   = 1 // replied, not yet assured
)

// listNode is one unassured flow's place on its list: node numbers of its
// neighbours (0 at either end), the slot the flow occupies, and since, the
// time it joined the list (its creation, or its first reply). Keeping
// since here means taking the head off (every eviction) finds the next
// head's age without reading a cold entry.
type listNode struct {
	since            int64
	prev, next, slot uint32
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

// newNode takes a free node for slot. The array grows by a quarter at a
// time (doubling would leave up to half of it unused at a million flows).
func (s *shard) newNode(slot uint32, since int64) uint32 {
	if n := s.freeNode; n != 0 {
		s.freeNode = s.nodes[n].next
		s.nodes[n] = listNode{slot: slot, since: since}
		return n
	}
	if len(s.nodes) == cap(s.nodes) {
		grown := make([]listNode, len(s.nodes), max(16, cap(s.nodes)+cap(s.nodes)/4))
		copy(grown, s.nodes)
		s.nodes = grown
	}
	if len(s.nodes) == 0 {
		s.nodes = append(s.nodes, listNode{}) // node 0: the sentinel
	}
	s.nodes = append(s.nodes, listNode{slot: slot, since: since})
	return uint32(len(s.nodes) - 1)
}

// pushBack appends the flow at slot to list l at time since (never
// earlier than the tail's). The caller passes since rather than this
// reading the entry: insert has just stored the entry to a cold line and
// reading it back would wait for the line.
func (s *shard) pushBack(l int, slot uint32, since int64) {
	n := s.newNode(slot, since)
	s.at(slot).node = n
	s.nodes[n].prev = s.tail[l]
	if s.tail[l] != 0 {
		s.nodes[s.tail[l]].next = n
	} else {
		s.head[l] = n
		s.oldest[l].Store(since)
	}
	s.tail[l] = n
}

// unlink takes the flow at slot off list l and frees its node.
func (s *shard) unlink(l int, slot uint32) {
	e := s.at(slot)
	n := e.node
	nd := s.nodes[n]
	if nd.prev != 0 {
		s.nodes[nd.prev].next = nd.next
	} else {
		s.head[l] = nd.next
		if nd.next != 0 {
			s.oldest[l].Store(s.nodes[nd.next].since)
		} else {
			s.oldest[l].Store(math.MaxInt64)
		}
	}
	if nd.next != 0 {
		s.nodes[nd.next].prev = nd.prev
	} else {
		s.tail[l] = nd.prev
	}
	s.nodes[n] = listNode{next: s.freeNode}
	s.freeNode = n
	e.node = 0
}

// compactNodes renumbers the nodes in list order into an array just big
// enough for them, after a shrink: a flood of unassured flows otherwise
// leaves its peak of nodes allocated for good.
func (s *shard) compactNodes() {
	listed := 0
	for l := range s.head {
		for n := s.head[l]; n != 0; n = s.nodes[n].next {
			listed++
		}
	}
	if len(s.nodes) <= 2*listed+16 {
		return
	}
	nodes := make([]listNode, 1, listed+1)
	for l := range s.head {
		prev := uint32(0)
		for n := s.head[l]; n != 0; n = s.nodes[n].next {
			nd := s.nodes[n]
			id := uint32(len(nodes))
			nodes = append(nodes, listNode{since: nd.since, prev: prev, slot: nd.slot})
			if prev != 0 {
				nodes[prev].next = id
			} else {
				s.head[l] = id
			}
			s.at(nd.slot).node = id
			prev = id
		}
		s.tail[l] = prev
	}
	s.nodes, s.freeNode = nodes, 0
}
