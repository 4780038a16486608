package control

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// listFiltered lists the protocols of the flows filter selects.
func listFiltered(t *testing.T, c Client, filter any) ([]string, error) {
	t.Helper()
	var got []string
	err := c.Stream(context.Background(), OpConntrackList, filter, func(dec *json.Decoder) error {
		var f Flow
		if err := dec.Decode(&f); err != nil {
			return err
		}
		got = append(got, f.Proto)
		return nil
	})
	slices.Sort(got)
	return got, err
}

func TestOpsListFilter(t *testing.T) {
	b, c := newOpsServer(t)
	fillTable(t, b.t, b.p) // tcp 198.18.1.2:41234 -> 198.18.2.2:80 ESTABLISHED; udp [2001:2:0:1::2]:5353 -> [2001:2:0:2::2]:53
	for _, tc := range []struct {
		name string
		f    FlowFilter
		want []string
	}{
		{"none", FlowFilter{}, []string{"tcp", "udp"}},
		{"proto", FlowFilter{Proto: "UDP"}, []string{"udp"}},
		{"src address", FlowFilter{Src: "198.18.1.2"}, []string{"tcp"}},
		{"src mapped address", FlowFilter{Src: "::ffff:198.18.1.2"}, []string{"tcp"}},
		{"src mapped prefix", FlowFilter{Src: "::ffff:198.18.1.0/120"}, []string{"tcp"}},
		{"src prefix v6", FlowFilter{Src: "2001:2::/32"}, []string{"udp"}},
		{"src prefix misses", FlowFilter{Src: "198.18.3.0/24"}, nil},
		{"dst address and port", FlowFilter{Dst: "198.18.2.2:80"}, []string{"tcp"}},
		{"dst wrong port", FlowFilter{Dst: "198.18.2.2:81"}, nil},
		{"reply direction is not matched", FlowFilter{Src: "198.18.2.2"}, nil},
		{"state", FlowFilter{State: "established"}, []string{"tcp"}},
		{"state excludes udp", FlowFilter{State: "SYN_SENT"}, nil},
		{"rule", FlowFilter{Rule: "ctl-allow-dns"}, []string{"udp"}},
		{"all fields", FlowFilter{Proto: "tcp", Src: "198.18.1.0/24", Dst: "198.18.2.2", State: "ESTABLISHED", Rule: "ctl-allow-web"}, []string{"tcp"}},
	} {
		got, err := listFiltered(t, c, tc.f)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s: listed %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
	// Older clients send no arguments: everything.
	if got, err := listFiltered(t, c, nil); err != nil || len(got) != 2 {
		t.Errorf("no arguments: %v %v", got, err)
	}
	for _, tc := range []struct {
		f    any
		want string
	}{
		{FlowFilter{Proto: "sctp"}, "proto"},
		{FlowFilter{Src: "198.18.1.2/40"}, "src"},
		{FlowFilter{Dst: "nowhere"}, "dst"},
		{FlowFilter{Src: "fe80::1%eth0"}, "zones"},
		{FlowFilter{Src: "[fe80::1%eth0]:80"}, "zones"},
		{FlowFilter{Src: "fe80::1%eth0/64"}, "src"},
		{FlowFilter{State: "OPEN"}, "state"},
		{map[string]string{"sauce": "x"}, "unknown field"},
	} {
		if _, err := listFiltered(t, c, tc.f); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("filter %+v: err %v, want one naming %q", tc.f, err, tc.want)
		}
	}

	// Flush with a filter deletes what it selects and nothing else.
	var res Flushed
	if err := c.Call(context.Background(), OpConntrackFlush, FlowFilter{Proto: "tcp"}, &res); err != nil || res.Deleted != 1 {
		t.Fatalf("flush tcp: %v %+v", err, res)
	}
	if got, _ := listFiltered(t, c, nil); !slices.Equal(got, []string{"udp"}) {
		t.Errorf("after flushing tcp: %v", got)
	}
	if err := c.Call(context.Background(), OpConntrackFlush, FlowFilter{State: "bogus"}, &res); err == nil {
		t.Error("flush with a bad filter succeeded")
	}
	if got, _ := listFiltered(t, c, nil); len(got) != 1 {
		t.Errorf("a refused flush deleted flows: %v", got)
	}
}
