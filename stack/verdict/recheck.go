package verdict

import "github.com/tungate/tungate/conntrack"

// MarkRecheck asks for every flow tracked now to be decided again, by the
// policy in force, on its next packet ([reload] existing_flows =
// "recheck"). A new reload's mark supersedes an unfinished one's, whose
// flows it includes anyway; flows committed afterwards were decided by the
// new policy and are not marked, nor are flows already ended (a stream
// hit or an earlier recheck refused them). Records that leave conntrack before
// sending again release their mark then.
func (f *Flows) MarkRecheck() {
	f.each(func(fl *Flow) {
		fl.mu.Lock()
		mark := !fl.recheck && !fl.finished && !fl.ended
		fl.recheck = true
		fl.mu.Unlock()
		if mark {
			f.rechecking.Add(1)
		}
	})
}

// Rechecking reports whether some flow awaits its recheck: the packet path
// looks a flow up only then.
func (f *Flows) Rechecking() bool { return f.rechecking.Load() != 0 }

// PendingRechecks is the number of flows awaiting their recheck.
func (f *Flows) PendingRechecks() int { return int(f.rechecking.Load()) }

// TakeRecheck reports whether the flow with original-direction key k
// awaits a recheck, and clears the mark: each flow is decided again once.
func (f *Flows) TakeRecheck(k conntrack.Key) bool {
	fl := f.Get(k)
	if fl == nil {
		return false
	}
	fl.mu.Lock()
	marked := fl.recheck
	fl.recheck = false
	fl.mu.Unlock()
	if marked {
		f.rechecking.Add(-1)
	}
	return marked
}
