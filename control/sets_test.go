package control

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tungate/tungate/conntrack"
	"github.com/tungate/tungate/internal/units"
	"github.com/tungate/tungate/policy"
)

// banPolicyConfig drops sources in the dynamic set "ban" and allows web
// traffic otherwise.
func banPolicyConfig(maxElems int) policy.Config {
	return policy.Config{
		Defaults: policy.Defaults{Policy: "drop"},
		Sets: map[string]policy.SetConfig{
			"ban":  {Type: "cidr", Dynamic: true, Timeout: units.Duration(10 * time.Minute), MaxElements: maxElems},
			"lan":  {Type: "cidr", Elements: policy.List{"198.18.1.0/24", "198.18.3.0/24"}},
			"webp": {Type: "port", Elements: policy.List{int64(80), int64(443)}},
		},
		Rules: []policy.RuleConfig{
			{Name: "set-drop-banned", Src: policy.List{"@ban"}, Action: "drop"},
			{Name: "set-allow-web", Proto: policy.List{"tcp"}, DstPort: policy.List{"@webp"}, Action: "allow"},
		},
	}
}

func newSetServer(t *testing.T, maxElems int) (*fakeBackend, Client) {
	t.Helper()
	p, err := policy.Compile(banPolicyConfig(maxElems))
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	var cfg conntrack.Config
	cfg.Defaults()
	b := &fakeBackend{t: conntrack.New(cfg, conntrack.Options{}), p: p}
	_, path, _, _ := serve(t, Ops(b), Options{})
	return b, Client{Path: path}
}

func listSet(t *testing.T, c Client, name string) []SetElem {
	t.Helper()
	var out []SetElem
	err := c.Stream(context.Background(), OpSetList, SetArgs{Name: name}, func(dec *json.Decoder) error {
		var e SetElem
		if err := dec.Decode(&e); err != nil {
			return err
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		t.Fatalf("list %s: %v", name, err)
	}
	return out
}

func webFlow(src string) *policy.Flow {
	return &policy.Flow{Proto: 6, Src: netip.MustParseAddr(src), Dst: webServer.Addr(), SrcPort: 41000, DstPort: 80}
}

func TestSetAddListDel(t *testing.T) {
	b, c := newSetServer(t, 16)
	ctx := context.Background()
	if v := b.p.Decide(webFlow("198.18.1.2")); v.Action != policy.ActionAllow {
		t.Fatalf("before the ban: %v", v.Action)
	}

	if err := c.Call(ctx, OpSetAdd, SetArgs{Name: "ban", Elem: "198.18.1.2"}, nil); err != nil {
		t.Fatalf("add: %v", err)
	}
	if err := c.Call(ctx, OpSetAdd, SetArgs{Name: "ban", Elem: "2001:2:0:1::2", Timeout: "90s"}, nil); err != nil {
		t.Fatalf("add v6: %v", err)
	}
	if v := b.p.Decide(webFlow("198.18.1.2")); v.Action != policy.ActionDrop {
		t.Errorf("banned source: %v", v.Action)
	}
	if v := b.p.Decide(webFlow("198.18.1.3")); v.Action != policy.ActionAllow {
		t.Errorf("other source: %v", v.Action)
	}

	es := listSet(t, c, "ban")
	if len(es) != 2 || es[0].Elem != "198.18.1.2" || es[1].Elem != "2001:2:0:1::2" {
		t.Fatalf("list %+v", es)
	}
	// The set's timeout (10m) and the given one (90s), less the test's
	// own running time.
	if r := es[0].Remaining(); r <= 9*time.Minute || r > 10*time.Minute || es[0].Expires == nil {
		t.Errorf("default timeout: remaining %v", r)
	}
	if r := es[1].Remaining(); r <= 60*time.Second || r > 90*time.Second {
		t.Errorf("given timeout: remaining %v", r)
	}
	if txt := es[1].Text(); !strings.HasPrefix(txt, "2001:2:0:1::2 expires 1m") {
		t.Errorf("text %q", txt)
	}

	if err := c.Call(ctx, OpSetDel, SetArgs{Name: "ban", Elem: "198.18.1.2"}, nil); err != nil {
		t.Fatalf("del: %v", err)
	}
	if v := b.p.Decide(webFlow("198.18.1.2")); v.Action != policy.ActionAllow {
		t.Errorf("released source: %v", v.Action)
	}
	if es := listSet(t, c, "ban"); len(es) != 1 || es[0].Elem != "2001:2:0:1::2" {
		t.Errorf("after del %+v", es)
	}
}

func TestSetListStatic(t *testing.T) {
	_, c := newSetServer(t, 16)
	es := listSet(t, c, "lan")
	if len(es) != 2 || es[0].Elem != "198.18.1.0/24" || es[1].Elem != "198.18.3.0/24" {
		t.Fatalf("cidr set %+v", es)
	}
	for _, e := range es {
		if e.Expires != nil || e.RemainingMS != 0 || e.Text() != e.Elem {
			t.Errorf("static element with a lifetime: %+v", e)
		}
	}
	if es := listSet(t, c, "webp"); len(es) != 2 || es[0].Elem != "80" || es[1].Elem != "443" {
		t.Errorf("port set %+v", es)
	}
}

// TestSetRefusals: each refusal reaches the client as a RemoteError naming
// what was wrong, and changes nothing.
func TestSetRefusals(t *testing.T) {
	_, c := newSetServer(t, 1)
	ctx := context.Background()
	if err := c.Call(ctx, OpSetAdd, SetArgs{Name: "ban", Elem: "198.18.1.9"}, nil); err != nil {
		t.Fatalf("first add: %v", err)
	}
	cases := []struct {
		op   string
		args any
		want string
	}{
		{OpSetAdd, SetArgs{Name: "nope", Elem: "198.18.1.2"}, `unknown set "nope"`},
		{OpSetAdd, SetArgs{Name: "lan", Elem: "198.18.1.2"}, `set "lan" is not dynamic`},
		{OpSetAdd, SetArgs{Name: "ban", Elem: "198.18.1.0/24"}, "invalid address"},
		{OpSetAdd, SetArgs{Name: "ban", Elem: "198.18.1.2", Timeout: "soon"}, `bad timeout "soon"`},
		{OpSetAdd, SetArgs{Name: "ban", Elem: "198.18.1.2", Timeout: "-5s"}, "must be positive"},
		{OpSetAdd, SetArgs{Name: "ban", Elem: "198.18.1.2"}, "set is full"},
		{OpSetAdd, SetArgs{Name: "ban"}, "missing element"},
		{OpSetAdd, SetArgs{Elem: "198.18.1.2"}, "missing set name"},
		{OpSetAdd, []int{1}, "bad arguments"},
		{OpSetDel, SetArgs{Name: "ban", Elem: "198.18.1.2"}, "is not in the set"},
		{OpSetDel, SetArgs{Name: "lan", Elem: "198.18.1.2"}, "not dynamic"},
		{OpSetList, SetArgs{Name: "nope"}, `unknown set "nope"`},
		{OpSetList, nil, "bad arguments"},
	}
	for _, tc := range cases {
		err := c.Call(ctx, tc.op, tc.args, nil)
		var re *RemoteError
		if !errors.As(err, &re) || !strings.Contains(re.Msg, tc.want) {
			t.Errorf("%s %+v: %v, want a refusal with %q", tc.op, tc.args, err, tc.want)
		}
	}
	if es := listSet(t, c, "ban"); len(es) != 1 || es[0].Elem != "198.18.1.9" {
		t.Errorf("refusals changed the set: %+v", es)
	}
}

// TestSetSurvivesReload: the backend's policy is replaced as a reload does
// (new Compile, CarryCountersFrom); elements added before are still listed
// and enforced, and an add afterwards reaches the new policy.
func TestSetSurvivesReload(t *testing.T) {
	b, c := newSetServer(t, 16)
	ctx := context.Background()
	if err := c.Call(ctx, OpSetAdd, SetArgs{Name: "ban", Elem: "198.18.1.2"}, nil); err != nil {
		t.Fatal(err)
	}
	np, err := policy.Compile(banPolicyConfig(32))
	if err != nil {
		t.Fatal(err)
	}
	np.CarryCountersFrom(b.p)
	b.p = np
	if es := listSet(t, c, "ban"); len(es) != 1 || es[0].Elem != "198.18.1.2" {
		t.Fatalf("after reload %+v", es)
	}
	if v := np.Decide(webFlow("198.18.1.2")); v.Action != policy.ActionDrop {
		t.Errorf("ban lost in reload: %v", v.Action)
	}
	if err := c.Call(ctx, OpSetAdd, SetArgs{Name: "ban", Elem: "198.18.1.3"}, nil); err != nil {
		t.Fatal(err)
	}
	if v := np.Decide(webFlow("198.18.1.3")); v.Action != policy.ActionDrop {
		t.Errorf("add after reload: %v", v.Action)
	}
}
