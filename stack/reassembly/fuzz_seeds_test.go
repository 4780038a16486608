package reassembly

// fuzzSeeds start FuzzAdd from inputs that reach every path: a whole
// datagram in order and reversed, a duplicate, overlaps, garbage, a
// timeout, another datagram in between. Ops: see FuzzAdd.
var fuzzSeeds = [][]byte{
	{0, 0, 0, 15, 0, 16, 16},                   // v4 udp, in order
	{3, 0, 16, 16, 0, 8, 7, 0, 0, 7},           // v6 udp, reversed
	{1, 0, 0, 3, 0, 0, 3, 0, 4, 16},            // v4 tcp with options, a duplicate
	{4, 0, 0, 7, 0, 4, 7, 0, 8, 16},            // v6 with extension headers, overlap
	{2, 2, 0, 0, 2, 1, 0, 2, 2, 0xf0},          // v4 icmp, 8-byte fragments
	{0, 0, 0, 7, 7, 31, 1, 0, 8, 16},           // a timeout in between
	{3, 6, 8, 0x60, 0, 0, 0, 0, 0, 0, 8, 1, 7}, // garbage, then another datagram
	{0, 4, 0, 7, 0, 0, 7, 0, 8, 16},            // different data at the same extent
	{3, 3, 0, 3},                               // v6 atomic fragment
	{0, 9, 3, 0, 0, 0, 15, 9, 16, 16},          // past 65,535 bytes
	{3, 8, 0, 16, 8, 0, 32, 8, 0, 48, 8, 0, 64, 8, 0, 80, 8, 0, 96, 0, 0, 15, 0, 16, 16}, // others fill the budget
}
