//go:build race

package relay

// raceEnabled lets allocation guards that depend on sync.Pool reuse skip
// under the race detector, which drops pooled items at random on purpose.
const raceEnabled = true
