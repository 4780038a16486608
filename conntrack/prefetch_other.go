//go:build !amd64

package conntrack

import "unsafe"

// prefetch is a no-op where tungate has no assembly for it; lookups are
// as correct, a cache miss slower.
func prefetch(p unsafe.Pointer) {}
