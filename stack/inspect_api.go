package stack

import (
	"github.com/tungate/tungate/conntrack"
	"github.com/tungate/tungate/policy"
	"github.com/tungate/tungate/stack/reassembly"
	"github.com/tungate/tungate/stack/verdict"
)

// The control socket lists flows and rule counters of a running gateway;
// these accessors give it the live table and the policy deciding new flows
// without the stack knowing anything about that socket.

// Conntrack returns the flow table the stack tracks into.
func (s *Stack) Conntrack() *conntrack.Table { return s.ct }

// Policy returns the policy currently deciding new flows (the last one
// given to New or SetPolicy).
func (s *Stack) Policy() *policy.Policy { return s.pol.Load() }

// FlowL7 returns what inspection recorded about the flow whose
// original-direction key is k (as conntrack.FlowInfo.Orig), for the
// control socket's listing.
func (s *Stack) FlowL7(k conntrack.Key) (L7Info, bool) { return s.apply.FlowL7(k) }

// L7Info is what inspection learned about one flow.
type L7Info = verdict.L7Info

// Fragments returns reassembly's counters.
func (s *Stack) Fragments() reassembly.Stats { return s.frags.Stats() }
