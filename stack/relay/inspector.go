package relay

import "github.com/tungate/tungate/policy"

// Inspector is what the TCP relay needs of *policy.Inspector, so tests can
// feed it fakes. It is fed from both directions, but never concurrently.
//
// An Inspector that also has a Done() bool method (as *policy.Inspector
// has, true for a nil pointer) is dropped as soon as Done reports true:
// from then on chunks are forwarded without taking the relay's lock.
type Inspector interface {
	Feed(dir policy.StreamDir, data []byte) (policy.Hit, bool)
}

// HitHandler learns of the drop or reject hit that ends a flow. OnHit is
// called once, under the relay's lock, before either side is reset: the
// verdict is recorded (cached, logged) by the time a peer can see the
// teardown.
type HitHandler interface {
	OnHit(policy.Hit)
}

type doner interface{ Done() bool }

var (
	_ Inspector = (*policy.Inspector)(nil)
	_ doner     = (*policy.Inspector)(nil)
)

func inspectorDone(ins Inspector) bool {
	d, ok := ins.(doner)
	return ok && d.Done()
}
