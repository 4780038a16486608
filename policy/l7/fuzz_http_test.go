package l7

import (
	"bytes"
	"fmt"
	"testing"
)

// httpTrace renders every event of feeding data in segments (sizes from
// cuts; nil cuts means all at once), plus the final state.
func httpTrace(t *testing.T, data, cuts []byte) []string {
	var h HTTPState
	var out []string
	segments(data, cuts, func(seg []byte) {
		for len(seg) > 0 {
			n, ev := h.Feed(seg)
			if n <= 0 || n > len(seg) {
				t.Fatalf("consumed %d of %d", n, len(seg))
			}
			if ev.Kind != HTTPRequest && n != len(seg) {
				t.Fatalf("%v left %d bytes", ev.Kind, len(seg)-n)
			}
			seg = seg[n:]
			if ev.Kind == HTTPRequest {
				if len(ev.Method) == 0 || bytes.ContainsFunc(ev.Host, func(r rune) bool { return 'A' <= r && r <= 'Z' }) || bytes.HasSuffix(ev.Host, []byte(".")) {
					t.Fatalf("bad event %q %q %q", ev.Method, ev.Target, ev.Host)
				}
				out = append(out, fmt.Sprintf("%q %q %q %q", ev.Method, ev.Target, ev.Path, ev.Host))
			}
		}
	})
	return append(out, fmt.Sprintf("phase %d kind %v opaque %v err %v", h.phase, h.kind, h.Opaque(), h.Err()))
}

// FuzzHTTP checks that no input panics, that Feed's accounting holds, and
// that the events do not depend on how the stream is split.
func FuzzHTTP(f *testing.F) {
	for _, s := range httpSeeds() {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		whole := httpTrace(t, data, nil)
		split := httpTrace(t, data, cuts)
		if fmt.Sprint(whole) != fmt.Sprint(split) {
			t.Fatalf("whole %q\nsplit %q", whole, split)
		}
	})
}

func httpSeeds() map[string][][]byte {
	return map[string][][]byte{
		"get":       {[]byte("GET /index.html HTTP/1.1\r\nHost: WWW.Example.com:80\r\nUser-Agent: curl/8\r\nAccept: */*\r\n\r\n"), {3, 50}},
		"pipelined": {[]byte("POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbodyGET /b HTTP/1.1\r\nHost: b.\r\n\r\n"), {0, 9}},
		"chunked": {[]byte("POST /c HTTP/1.1\r\nHost: c\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\nwiki\r\n0\r\nT: v\r\n\r\n" +
			"GET http://abs.example:8080/p HTTP/1.1\r\n\r\n"), {1}},
		"connect":   {[]byte("CONNECT t.example:443 HTTP/1.1\r\nHost: t.example:443\r\n\r\n\x16\x03\x01\x00\x05hello"), nil},
		"upgrade":   {[]byte("GET /ws HTTP/1.1\r\nHost: [2001:2::1]:80\r\nUpgrade: websocket\r\n\r\nGET / HTTP/1.1\r\n\r\n"), {7, 7}},
		"lf":        {[]byte("\r\nGET / HTTP/1.0\nHost: lf\n\n"), {2}},
		"smuggle":   {[]byte("POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), nil},
		"tls":       {[]byte("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), {0}},
		"truncated": {[]byte("GET /very/long/path?with=query HTTP/1.1\r\nHost: x\r\nX: "), {5, 1}},
	}
}

// writeHTTPSeeds commits the seeds above as the FuzzHTTP corpus.
func writeHTTPSeeds(t *testing.T) { writeSeeds(t, "FuzzHTTP", httpSeeds()) }
