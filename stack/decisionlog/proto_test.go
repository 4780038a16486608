package decisionlog

import "testing"

func TestProtoName(t *testing.T) {
	for _, tc := range []struct {
		proto uint8
		want  string
	}{
		{6, "tcp"},
		{17, "udp"},
		{1, "icmp"},
		{58, "icmpv6"},
		{47, "gre"},
		{50, "esp"},
		{51, "ah"},
		{132, "sctp"},
		{4, "ipip"},
		{41, "ipv6"},
		{136, "udplite"},
		{94, "94"},
		{3, "3"},
		{200, "200"},
		{255, "255"},
	} {
		if got := ProtoName(tc.proto); got != tc.want {
			t.Errorf("ProtoName(%d): got %q; want %q", tc.proto, got, tc.want)
		}
	}
}

func TestProtoNameAllocs(t *testing.T) {
	var p uint8
	if a := testing.AllocsPerRun(1000, func() { _ = ProtoName(p); p++ }); a != 0 {
		t.Errorf("allocations per ProtoName: got %v; want 0", a)
	}
}
