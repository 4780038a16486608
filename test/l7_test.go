package test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/tungate/tungate/internal/lab"
)

// L7 rules end to end (issue 5): HTTP Host variants and pipelining, DNS
// names per query, the L7 field in `tungate conntrack`, and explain.
const (
	http403Port  = 80   // http.host rule rejecting with "http-403"
	httpDropPort = 8080 // the same rule dropping (the client is reset)
	dnsPort      = 53
	hostRule403  = "block-host-403"
	hostRuleDrop = "block-host-drop"
	qnameRule    = "block-qname"
)

func l7Rules() string {
	return inspectSection + fmt.Sprintf(`
[[rule]]
name        = %q
proto       = "tcp"
dst_port    = %d
http.host   = { suffix = [%q] }
action      = "reject"
reject_with = "http-403"

[[rule]]
name      = %q
proto     = "tcp"
dst_port  = %d
http.host = { suffix = [%q] }
action    = "drop"

[[rule]]
name     = "allow-http"
proto    = "tcp"
dst_port = [%d, %d]
action   = "allow"

[[rule]]
name        = %q
proto       = "udp"
dst_port    = %d
dns.qname   = { suffix = [%q] }
action      = "reject"
reject_with = "dns-nxdomain"

[[rule]]
name     = "allow-dns"
proto    = "udp"
dst_port = %d
action   = "allow"
`, hostRule403, http403Port, blockedName, hostRuleDrop, httpDropPort, blockedName,
		http403Port, httpDropPort, qnameRule, dnsPort, blockedName, dnsPort) + sniRuleSet()
}

// httpExchange writes raw (one write: one segment) on a new connection
// and reads up to n responses; it stops at the first read error, which it
// returns with the responses read so far.
func httpExchange(ns lab.NS, dst netip.AddrPort, raw string, n int) ([]*http.Response, []string, error) {
	c, err := dialTimeout(ns, dst, 10*time.Second)
	if err != nil {
		return nil, nil, fmt.Errorf("dial: %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		return nil, nil, fmt.Errorf("write: %w", err)
	}
	br := bufio.NewReader(c)
	var resps []*http.Response
	var bodies []string
	for range n {
		r, err := http.ReadResponse(br, nil)
		if err != nil {
			return resps, bodies, err
		}
		b, err := io.ReadAll(r.Body)
		r.Body.Close()
		resps, bodies = append(resps, r), append(bodies, string(b))
		if err != nil {
			return resps, bodies, err
		}
	}
	return resps, bodies, nil
}

// TestL7HTTPHost: Host variants an attacker would try (upper case with a
// port, no blank after the colon and a trailing dot) are caught by a
// suffix rule and answered 403 by the gateway, never reaching the server;
// an allowed Host is served; of two pipelined requests in one segment the
// first is served and the second refused (403, or a reset where the rule
// drops).
func TestL7HTTPHost(t *testing.T) {
	l := newLab(t)
	gw := startGateway(t, l, gatewayConfig(t, l7Rules()))
	dst403 := netip.AddrPortFrom(lab.ServerV4, http403Port)
	dstDrop := netip.AddrPortFrom(lab.ServerV4, httpDropPort)
	rec403 := serveHTTP(t, l.Server, dst403)
	recDrop := serveHTTP(t, l.Server, dstDrop)

	t.Run("allowed", func(t *testing.T) {
		resps, bodies, err := httpExchange(l.Client, dst403, "GET /ok HTTP/1.1\r\nHost: allowed.example\r\n\r\n", 1)
		if err != nil || resps[0].StatusCode != 200 || bodies[0] != "served /ok for allowed.example" {
			t.Fatalf("allowed Host: responses %v %q, err %v; the server got %s", statuses(resps), bodies, err, quoteConns(rec403.received()))
		}
	})

	for _, c := range []struct{ name, req, host string }{
		{"upper-case-with-port", "GET /a HTTP/1.1\r\nHost: BLOCKED.example:80\r\n\r\n", "blocked.example"},
		{"lower-name-no-blank-trailing-dot", "GET /b HTTP/1.1\r\nhost:blocked.example.\r\n\r\n", "blocked.example"},
		{"subdomain-mixed-case", "GET /c HTTP/1.1\r\nUser-Agent: t\r\nHOST:   Www.Blocked.EXAMPLE  \r\nAccept: */*\r\n\r\n", "www.blocked.example"},
	} {
		t.Run(c.name, func(t *testing.T) {
			mark := len(rec403.received())
			resps, bodies, err := httpExchange(l.Client, dst403, c.req, 1)
			if len(resps) != 1 || resps[0].StatusCode != http.StatusForbidden {
				t.Errorf("%q: responses %v %q, err %v; want 403 from the gateway", c.req, statuses(resps), bodies, err)
			}
			time.Sleep(advQuiet)
			if got := rec403.received()[mark:]; containsAny(got, blockedName) {
				t.Errorf("the server received the blocked request: %s", quoteConns(got))
			}
			want := map[string]string{"rule": hostRule403, "http_host": c.host}
			if _, ok := findDecision(gw, want, 3*time.Second); !ok {
				t.Errorf("no decision line with %v", want)
			}
		})
	}

	// Per-request checks: after an answered request, a later one on the
	// same connection with a blocked Host is refused.
	for _, c := range []struct {
		name string
		dst  netip.AddrPort
		rec  *recorder
		want int // status of the refusal; 0: the connection ends instead
	}{{"keep-alive-403", dst403, rec403, http.StatusForbidden}, {"keep-alive-drop", dstDrop, recDrop, 0}} {
		t.Run(c.name, func(t *testing.T) {
			mark := len(c.rec.received())
			conn, err := dialTimeout(l.Client, c.dst, 10*time.Second)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(15 * time.Second))
			br := bufio.NewReader(conn)
			io.WriteString(conn, "GET /one HTTP/1.1\r\nHost: allowed.example\r\n\r\n")
			r, err := http.ReadResponse(br, nil)
			if err != nil || r.StatusCode != 200 {
				t.Fatalf("first request: %v %v", r, err)
			}
			io.Copy(io.Discard, r.Body)
			io.WriteString(conn, "GET /two HTTP/1.1\r\nHost: x.BLOCKED.example\r\n\r\n")
			r, err = http.ReadResponse(br, nil)
			switch {
			case c.want != 0 && (err != nil || r.StatusCode != c.want):
				t.Errorf("second request (blocked Host): %v %v; want %d", statusOf(r), err, c.want)
			case c.want == 0 && err == nil:
				t.Errorf("second request (blocked Host, drop rule): status %d; want the connection ended", r.StatusCode)
			}
			time.Sleep(advQuiet)
			if got := c.rec.received()[mark:]; containsAny(got, "/two") || !containsAny(got, "/one") {
				t.Errorf("the server should have received /one only: %s", quoteConns(got))
			}
		})
	}

	pipelined := "GET /first HTTP/1.1\r\nHost: allowed.example\r\n\r\n" +
		"GET /second HTTP/1.1\r\nHost: blocked.example\r\n\r\n"
	t.Run("pipelined-403", func(t *testing.T) {
		mark := len(rec403.received())
		resps, bodies, err := httpExchange(l.Client, dst403, pipelined, 2)
		if len(resps) < 1 || resps[0].StatusCode != 200 || bodies[0] != "served /first for allowed.example" {
			t.Errorf("first pipelined request: responses %v %q, err %v; want it served", statuses(resps), bodies, err)
		}
		if len(resps) < 2 || resps[1].StatusCode != http.StatusForbidden {
			t.Errorf("second pipelined request (blocked Host): responses %v %q, err %v; want 403", statuses(resps), bodies, err)
		}
		time.Sleep(advQuiet)
		got := rec403.received()[mark:]
		if containsAny(got, "/second") || containsAny(got, blockedName) {
			t.Errorf("the server received the blocked second request: %s", quoteConns(got))
		}
		if !containsAny(got, "/first") {
			t.Errorf("the server never received the allowed first request: %s", quoteConns(got))
		}
	})
	t.Run("pipelined-drop", func(t *testing.T) {
		mark := len(recDrop.received())
		resps, bodies, err := httpExchange(l.Client, dstDrop, pipelined, 2)
		if len(resps) < 1 || resps[0].StatusCode != 200 || bodies[0] != "served /first for allowed.example" {
			t.Errorf("first pipelined request: responses %v %q, err %v; want it served", statuses(resps), bodies, err)
		}
		if len(resps) > 1 {
			t.Errorf("second pipelined request (blocked Host, drop rule) got a response %v %q; want the connection ended", statuses(resps), bodies)
		}
		time.Sleep(advQuiet)
		got := recDrop.received()[mark:]
		if containsAny(got, "/second") || containsAny(got, blockedName) {
			t.Errorf("the server received the blocked second request: %s", quoteConns(got))
		}
		t.Logf("client after the dropped request: %v", err)
	})
}

func statusOf(r *http.Response) any {
	if r == nil {
		return nil
	}
	return r.StatusCode
}

func statuses(rs []*http.Response) []int {
	out := make([]int, len(rs))
	for i, r := range rs {
		out[i] = r.StatusCode
	}
	return out
}

// dnsQuery asks name (type A) over c and returns the parsed answer.
func dnsQuery(c net.Conn, name string) (uint16, dnsmessage.Message, error) {
	var idb [2]byte
	rand.Read(idb[:])
	id := binary.BigEndian.Uint16(idb[:])
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, RecursionDesired: true})
	q := dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}
	if err := b.StartQuestions(); err != nil {
		return id, dnsmessage.Message{}, err
	}
	if err := b.Question(q); err != nil {
		return id, dnsmessage.Message{}, err
	}
	msg, err := b.Finish()
	if err != nil {
		return id, dnsmessage.Message{}, err
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(msg); err != nil {
		return id, dnsmessage.Message{}, err
	}
	buf := make([]byte, 1500)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return id, dnsmessage.Message{}, err
		}
		var m dnsmessage.Message
		if err := m.Unpack(buf[:n]); err != nil {
			return id, m, fmt.Errorf("unpack answer: %w", err)
		}
		if m.ID == id {
			return id, m, nil
		}
		// A late answer to an earlier query: not this one.
	}
}

// TestL7DNSQName: on one UDP flow, queries are decided one by one: a
// blocked name in mixed case (written with its trailing dot, as every
// name is on the wire) gets NXDOMAIN with the query's id from the gateway
// and never reaches the server; allowed names before and after are
// answered by the real server behind the gateway.
func TestL7DNSQName(t *testing.T) {
	l := newLab(t)
	gw := startGateway(t, l, gatewayConfig(t, l7Rules()))
	dst := netip.AddrPortFrom(lab.ServerV4, dnsPort)
	srv := serveDNS(t, l.Server, dst)
	var c net.Conn
	if err := l.Client.Do(func() (err error) {
		c, err = net.Dial("udp", dst.String())
		return err
	}); err != nil {
		t.Fatalf("udp socket: %v", err)
	}
	t.Cleanup(func() { c.Close() })

	for _, q := range []struct {
		name  string
		block bool
	}{
		{"allowed.example.", false},
		{"BlOcKeD.ExAmPlE.", true},
		{"www.BLOCKED.example.", true},
		{"Allowed.Example.", false},
	} {
		t.Run(strings.TrimSuffix(q.name, "."), func(t *testing.T) {
			id, m, err := dnsQuery(c, q.name)
			if err != nil {
				t.Fatalf("query %s: %v (server was asked %q)", q.name, err, srv.asked())
			}
			if !m.Response || m.ID != id {
				t.Fatalf("answer to %s: response=%v id=%d, want a response with id %d", q.name, m.Response, m.ID, id)
			}
			if q.block {
				if m.RCode != dnsmessage.RCodeNameError {
					t.Errorf("%s: rcode %v with %d answers; want NXDOMAIN from the gateway", q.name, m.RCode, len(m.Answers))
				}
				for _, a := range srv.asked() {
					if strings.EqualFold(strings.TrimSuffix(a, "."), strings.TrimSuffix(q.name, ".")) {
						t.Errorf("the server was asked %q", a)
					}
				}
				want := map[string]string{"rule": qnameRule, "dns_qname": strings.ToLower(strings.TrimSuffix(q.name, "."))}
				if _, ok := findDecision(gw, want, 3*time.Second); !ok {
					t.Errorf("no decision line with %v", want)
				}
				return
			}
			if m.RCode != dnsmessage.RCodeSuccess || len(m.Answers) != 1 {
				t.Fatalf("%s: rcode %v, %d answers; want the server's answer", q.name, m.RCode, len(m.Answers))
			}
			if a, ok := m.Answers[0].Body.(*dnsmessage.AResource); !ok || a.A != dnsAnswer {
				t.Errorf("%s: answer %v, want A %v", q.name, m.Answers[0].Body, dnsAnswer)
			}
		})
	}
	t.Logf("server was asked %q", srv.asked())
}

// l7FlowKeys are the JSON names of control.Flow's L7 fields.
var l7FlowKeys = []string{"sni", "http_host", "dns_qname"}

// TestL7ConntrackField: an allowed TLS flow, HTTP flow and DNS flow,
// kept open, show the field inspection read in `tungate conntrack`
// (sni=, http_host=, dns_qname=; names normalized) and its JSON.
func TestL7ConntrackField(t *testing.T) {
	l := newLab(t)
	sock := filepath.Join(t.TempDir(), "tungate.sock")
	startGateway(t, l, gatewayConfigAt(sock, l7Rules()))
	cert, pool := testCert(t, allowedName)
	tlsDst := netip.AddrPortFrom(lab.ServerV4, tlsPort)
	serveTLS(t, l.Server, tlsDst, cert)
	httpDst := netip.AddrPortFrom(lab.ServerV4, http403Port)
	serveHTTP(t, l.Server, httpDst)

	tc, _, err := shapedTLS(l.Client, tlsDst, allowedName, pool, false, false)
	if err != nil {
		t.Fatalf("TLS to %s: %v", allowedName, err)
	}
	defer tc.Close()
	hc, err := dialTimeout(l.Client, httpDst, 10*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", httpDst, err)
	}
	defer hc.Close()
	hc.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(hc, "GET /keep HTTP/1.1\r\nHost: Allowed.Example:80\r\n\r\n")
	if r, err := http.ReadResponse(bufio.NewReader(hc), nil); err != nil || r.StatusCode != 200 {
		t.Fatalf("HTTP through the gateway: %v %v", r, err)
	}

	dnsDst := netip.AddrPortFrom(lab.ServerV4, dnsPort)
	serveDNS(t, l.Server, dnsDst)
	var dc net.Conn
	if err := l.Client.Do(func() (err error) {
		dc, err = net.Dial("udp", dnsDst.String())
		return err
	}); err != nil {
		t.Fatalf("udp socket: %v", err)
	}
	defer dc.Close()
	if _, m, err := dnsQuery(dc, "Allowed.Example."); err != nil || m.RCode != dnsmessage.RCodeSuccess {
		t.Fatalf("DNS through the gateway: %v %v", m.RCode, err)
	}

	out, errOut, code := cli(t, l, "conntrack", "-s", sock)
	if code != 0 {
		t.Fatalf("tungate conntrack: exit %d\n%s%s", code, out, errOut)
	}
	for _, c := range []struct {
		conn net.Conn
		want string
	}{{tc, "sni="}, {hc, "http_host="}, {dc, "dns_qname="}} {
		sport := fmt.Sprintf("sport=%d", netip.MustParseAddrPort(c.conn.LocalAddr().String()).Port())
		line := ""
		for _, ln := range strings.Split(out, "\n") {
			if strings.Contains(ln, sport) {
				line = ln
			}
		}
		// The value may be quoted.
		if !strings.Contains(line, c.want+allowedName) && !strings.Contains(line, c.want+`"`+allowedName+`"`) {
			t.Errorf("tungate conntrack: the flow with %s reads %q, want %s in it\n%s", sport, line, c.want, out)
		}
	}
	jout, errOut, code := cli(t, l, "conntrack", "-s", sock, "--json")
	if code != 0 {
		t.Fatalf("tungate conntrack --json: exit %d\n%s%s", code, jout, errOut)
	}
	// One array, or one object per line.
	var flows []map[string]any
	dec := json.NewDecoder(strings.NewReader(jout))
	for dec.More() {
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("conntrack --json: %v\n%s", err, jout)
		}
		switch v := v.(type) {
		case map[string]any:
			flows = append(flows, v)
		case []any:
			for _, e := range v {
				if m, ok := e.(map[string]any); ok {
					flows = append(flows, m)
				}
			}
		}
	}
	found := 0
	for _, m := range flows {
		for _, k := range l7FlowKeys {
			if v, _ := m[k].(string); v == allowedName {
				found++
			}
		}
	}
	if found < 3 {
		t.Errorf("conntrack --json: %d flows carry %q under one of %v, want 3\n%s", found, allowedName, l7FlowKeys, jout)
	}
}

// TestL7Explain: offline, explain shows the L7 decision for --sni,
// --http-host and --dns-qname, names in any case.
func TestL7Explain(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tungate.toml")
	if err := os.WriteFile(cfg, []byte(gatewayConfigAt(filepath.Join(dir, "s.sock"), l7Rules())), 0o644); err != nil {
		t.Fatal(err)
	}
	src := netip.AddrPortFrom(lab.ClientV4, 40000).String()
	tcpTo := func(port int) string { return netip.AddrPortFrom(lab.ServerV4, uint16(port)).String() }
	for _, c := range []struct {
		args         []string
		action, rule string
		why          string // the deciding step names the field and its normalized value
	}{
		{[]string{"--dst", tcpTo(tlsPort), "--sni", blockedName}, "reject", sniRule, `tls.sni "blocked.example"`},
		{[]string{"--dst", tcpTo(tlsPort), "--sni", "WWW.Blocked.Example."}, "reject", sniRule, `tls.sni "www.blocked.example"`},
		{[]string{"--dst", tcpTo(tlsPort), "--sni", allowedName}, "allow", "allow-tls", ""},
		{[]string{"--dst", tcpTo(http403Port), "--http-host", "BLOCKED.example:80"}, "reject/http-403", hostRule403, `http.host "blocked.example"`},
		{[]string{"--dst", tcpTo(httpDropPort), "--http-host", "blocked.example."}, "drop", hostRuleDrop, `http.host "blocked.example"`},
		{[]string{"--dst", tcpTo(http403Port), "--http-host", allowedName}, "allow", "allow-http", ""},
		{[]string{"--proto", "udp", "--dst", tcpTo(dnsPort), "--dns-qname", "BlOcKeD.ExAmPlE."}, "reject/dns-nxdomain", qnameRule, `dns.qname "blocked.example"`},
		{[]string{"--proto", "udp", "--dst", tcpTo(dnsPort), "--dns-qname", allowedName}, "allow", "allow-dns", ""},
	} {
		args := append([]string{"explain", "-c", cfg, "--src", src}, c.args...)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, code := runTungate(t, ctx, dir, args...)
		cancel()
		what := strings.Join(c.args, " ")
		if code != 0 {
			t.Errorf("tungate explain %s: exit %d\n%s", what, code, out)
			continue
		}
		var verdict, decided string
		for _, ln := range strings.Split(out, "\n") {
			if v, ok := strings.CutPrefix(ln, "verdict: "); ok {
				verdict = v
			}
			if strings.HasPrefix(ln, "=>") {
				decided = ln
			}
		}
		action, rule, _ := strings.Cut(verdict, " by ")
		// "reject" alone accepts whichever kind auto resolves to.
		if rule != c.rule || (action != c.action && !strings.HasPrefix(action, c.action+"/")) {
			t.Errorf("tungate explain %s: verdict %q, want %s by %s\n%s", what, verdict, c.action, c.rule, out)
		}
		if !strings.Contains(decided, c.why) {
			t.Errorf("tungate explain %s: deciding step %q does not show %s\n%s", what, decided, c.why, out)
		}
		if !strings.Contains(out, "\nl7: ") {
			t.Errorf("tungate explain %s: no l7: line\n%s", what, out)
		}
	}
}
