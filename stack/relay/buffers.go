package relay

import "sync"

// bigBufSize is one read's worth of stream data while a TCP flow is busy;
// also the largest chunk an Inspector sees at once.
const bigBufSize = 64 << 10

// smallBufSize is the buffer a TCP pump waits with. A blocking Read holds
// its buffer for as long as the flow is idle, so an idle flow must not hold
// a big one: 10,000 idle connections would pin 2 x 10,000 of them. 256
// bytes rather than 1 KiB saves another 15 MiB over 10,000 idle flows; a
// busy flow pays for it with one short read before it moves to a big
// buffer.
const smallBufSize = 256

var bigBufPool = sync.Pool{New: func() any { b := make([]byte, bigBufSize); return &b }}

// datagramBufSize holds the largest UDP payload, so no datagram is
// truncated.
const datagramBufSize = 64 << 10

var datagramBufPool = sync.Pool{New: func() any { b := make([]byte, datagramBufSize); return &b }}
