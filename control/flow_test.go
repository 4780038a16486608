package control

import (
	"strings"
	"testing"
)

func TestStatsTextWithFragments(t *testing.T) {
	st := Stats{Flows: 1, MaxFlows: 10, Fragments: &Fragments{Fragments: 5, Reassembled: 2, Dropped: map[string]uint64{"overlap": 1, "duplicate": 2}}}
	got := st.String()
	want := "\nfragments=5 reassembled=2 atomic=0 held=0 datagrams=0 memory=0 dropped_duplicate=2 dropped_overlap=1"
	if !strings.HasSuffix(got, want) || !strings.HasPrefix(got, "flows=1 max_flows=10 ") {
		t.Errorf("got %q; want the table's line, then %q", got, want[1:])
	}
}
