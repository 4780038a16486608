package conntrack

import "unsafe"

// prefetch asks the CPU to start loading the cache line at p. Unlike a
// load, it retires at once: nothing waits for the line unless it is
// then read. Go exposes no prefetch to user code, hence the assembly.
//
//go:noescape
func prefetch(p unsafe.Pointer)
