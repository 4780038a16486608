package l7

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// collect feeds data in segments of at most seg bytes (random sizes when
// r is set) and renders each event; the last entry is the final state.
func collect(h *HTTPState, data []byte, seg int, r *rand.Rand) []string {
	var out []string
	for len(data) > 0 {
		n := min(seg, len(data))
		if r != nil {
			n = min(1+r.IntN(seg), len(data))
		}
		piece := data[:n]
		data = data[n:]
		for len(piece) > 0 {
			used, ev := h.Feed(piece)
			if used <= 0 || used > len(piece) {
				panic(fmt.Sprintf("consumed %d of %d", used, len(piece)))
			}
			piece = piece[used:]
			switch ev.Kind {
			case HTTPRequest:
				out = append(out, fmt.Sprintf("%s %s %s", ev.Method, ev.Path, ev.Host))
			case HTTPNeedMore:
			default:
				if len(piece) != 0 {
					panic("failure left bytes unconsumed")
				}
			}
		}
	}
	end := "need-more"
	switch {
	case h.Opaque():
		end = "opaque"
	case h.phase == phFailed:
		end = h.kind.String()
	case h.phase != phHead:
		end = "in-body"
	}
	return append(out, end)
}

func checkHTTP(t *testing.T, name, stream string, want ...string) {
	t.Helper()
	r := rand.New(rand.NewPCG(uint64(len(stream)), 3))
	var h HTTPState
	for _, seg := range []int{len(stream), 1, 2, 7, 100} {
		h.Reset()
		if got := collect(&h, []byte(stream), seg, nil); !slices.Equal(got, want) {
			t.Fatalf("%s, segments of %d:\n got %q\nwant %q (err %v)", name, seg, got, want, h.Err())
		}
		h.Reset()
		if got := collect(&h, []byte(stream), seg, r); !slices.Equal(got, want) {
			t.Fatalf("%s, random segments <=%d:\n got %q\nwant %q (err %v)", name, seg, got, want, h.Err())
		}
	}
}

func TestHTTPRequests(t *testing.T) {
	const smuggled = "GET /smuggled HTTP/1.1\r\n\r\n"
	chunked := "POST /up HTTP/1.1\r\nHost: up.example\r\nTransfer-Encoding: gzip, chunked\r\n\r\n" +
		"5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: GET /fake HTTP/1.1\r\n\r\n"
	cases := []struct {
		name, stream string
		want         []string
	}{
		{"simple", "GET / HTTP/1.1\r\nHost: Example.COM:8080\r\n\r\n",
			[]string{"GET / example.com", "need-more"}},
		{"trailing dot", "GET /a?b=c HTTP/1.0\r\nhost:www.example.org.\r\nAccept: */*\r\n\r\n",
			[]string{"GET /a?b=c www.example.org", "need-more"}},
		{"pipelined with bodies", "POST /form HTTP/1.1\r\nHost: a.example\r\nContent-Length: " + fmt.Sprint(len(smuggled)) + "\r\n\r\n" + smuggled +
			chunked + "\r\n\r\nHEAD /last HTTP/1.1\r\nHost: c.example\r\n\r\n",
			[]string{"POST /form a.example", "POST /up up.example", "HEAD /last c.example", "need-more"}},
		{"absolute form", "GET http://user@Foo.Example.:80/x?y HTTP/1.1\r\nHost: other.example\r\n\r\nGET HTTPS://b.example HTTP/1.1\r\n\r\n",
			[]string{"GET /x?y foo.example", "GET / b.example", "need-more"}},
		{"ipv6 host", "GET / HTTP/1.1\r\nHost: [2001:2::1]:8080\r\n\r\n",
			[]string{"GET / 2001:2::1", "need-more"}},
		{"no host", "OPTIONS * HTTP/1.1\r\n\r\n", []string{"OPTIONS * ", "need-more"}},
		{"bare LF", "GET /lf HTTP/1.1\nHost: lf.example\n\nGET /2 HTTP/1.1\nHost: x\n\n",
			[]string{"GET /lf lf.example", "GET /2 x", "need-more"}},
		{"partial body", "PUT /p HTTP/1.1\r\nHost: p\r\nContent-Length: 100\r\n\r\nabc",
			[]string{"PUT /p p", "in-body"}},
		{"partial head", "GET / HTTP/1.1\r\nHost: p", []string{"need-more"}},
		{"connect then tls", "CONNECT Tunnel.Example:443 HTTP/1.1\r\nHost: tunnel.example:443\r\n\r\n\x16\x03\x01\x02\x00\x01",
			[]string{"CONNECT  tunnel.example", "opaque"}},
		{"upgrade then frames", "GET /ws HTTP/1.1\r\nHost: ws.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x85abcdhello",
			[]string{"GET /ws ws.example", "opaque"}},
		{"upgrade refused, next request", "GET /a HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\n\r\nGET /b HTTP/1.1\r\nHost: b\r\n\r\n",
			[]string{"GET /a a", "GET /b b", "need-more"}},
	}
	for _, c := range cases {
		checkHTTP(t, c.name, c.stream, c.want...)
	}
}

func TestHTTPReject(t *testing.T) {
	big := "GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X-Pad: "+strings.Repeat("p", 100)+"\r\n", 170) + "\r\n"
	cases := []struct {
		name, stream, want string
	}{
		{"tls", "\x16\x03\x01\x02\x00", "not-http"},
		{"ssh", "SSH-2.0-OpenSSH_9.6\r\n", "not-http"},
		{"long token", strings.Repeat("A", 40), "not-http"},
		{"http/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "not-http"},
		{"no version", "GET /\r\n\r\n", "not-http"},
		{"head too large", big, "error"},
		{"head too large, no end", "GET / HTTP/1.1\r\n" + strings.Repeat("a", MaxHead), "error"},
		{"te and cl", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", "error"},
		{"te not chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", "error"},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "error"},
		{"obs fold", "GET / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n", "error"},
		{"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", "error"},
		{"conflicting cl", "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "error"},
		{"bad cl", "POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n", "error"},
		{"bad host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "error"},
		{"bad chunk size", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "error"},
		{"huge chunk size", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000000\r\n", "error"},
		{"missing chunk crlf", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\naXY", "error"},
		{"garbage after request", "GET / HTTP/1.1\r\nHost: a\r\n\r\n\x16\x03\x01", "error"},
	}
	for _, c := range cases {
		var h HTTPState
		for _, seg := range []int{len(c.stream), 1, 13} {
			h.Reset()
			got := collect(&h, []byte(c.stream), seg, nil)
			if got[len(got)-1] != c.want || h.Err() == nil {
				t.Errorf("%s, segments of %d: got %q want %s (err %v)", c.name, seg, got, c.want, h.Err())
			}
		}
	}
	// One byte decides, and failures are sticky.
	var h HTTPState
	if _, ev := h.Feed([]byte{0x16}); ev.Kind != NotHTTP {
		t.Fatalf("one TLS byte: %v", ev.Kind)
	}
	if n, ev := h.Feed([]byte("GET / HTTP/1.1\r\n\r\n")); ev.Kind != NotHTTP || n != 18 {
		t.Fatalf("not sticky: %v %d", ev.Kind, n)
	}
}

// TestHTTPEventSlices checks that fields stay intact while the caller
// holds them until its next Feed, also when the head was buffered.
func TestHTTPEventSlices(t *testing.T) {
	req := []byte("DELETE /item/7 HTTP/1.1\r\nHost: Items.Example\r\n\r\n")
	var h HTTPState
	h.Feed(req[:10])
	n, ev := h.Feed(req[10:])
	if ev.Kind != HTTPRequest || n != len(req)-10 {
		t.Fatalf("%v %d", ev.Kind, n)
	}
	if string(ev.Method) != "DELETE" || string(ev.Target) != "/item/7" || string(ev.Host) != "items.example" {
		t.Fatalf("%q %q %q", ev.Method, ev.Target, ev.Host)
	}
	if string(req) != "DELETE /item/7 HTTP/1.1\r\nHost: Items.Example\r\n\r\n" {
		t.Fatal("Feed modified the caller's bytes")
	}
}

func TestHTTPAllocs(t *testing.T) {
	stream := []byte("GET /a HTTP/1.1\r\nHost: A.example\r\nContent-Length: 5\r\n\r\nhelloPOST /b HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
	var h HTTPState
	var events int
	run := func() {
		h.Reset()
		for _, split := range [][]byte{stream[:20], stream[20:]} {
			for len(split) > 0 {
				n, ev := h.Feed(split)
				split = split[n:]
				if ev.Kind == HTTPRequest {
					events++
				}
			}
		}
	}
	run()
	events = 0
	if allocs := testing.AllocsPerRun(100, run); allocs != 0 {
		t.Fatalf("allocs/run = %v", allocs)
	}
	if events != 2*101 { // AllocsPerRun runs once more to warm up
		t.Fatalf("events = %d", events)
	}
}

func BenchmarkHTTPRequest(b *testing.B) {
	req := []byte("GET /static/app.js?v=123 HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\n" +
		"Accept: */*\r\nAccept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\nConnection: keep-alive\r\n\r\n")
	b.ReportAllocs()
	b.SetBytes(int64(len(req)))
	var h HTTPState
	for b.Loop() {
		if _, ev := h.Feed(req); ev.Kind != HTTPRequest {
			b.Fatal(ev.Kind, h.Err())
		}
	}
}
