package policy

import (
	"bytes"
	"testing"
)

func asciiFold(b []byte, on bool) []byte {
	if !on {
		return b
	}
	out := make([]byte, len(b))
	for i, c := range b {
		out[i] = lowerASCII[c]
	}
	return out
}

// FuzzInspector checks the streaming matcher against bytes.Contains on the
// concatenated stream: rule 0 (to_server) and rule 1 (both directions) are
// fed data cut into chunks at fuzzer-chosen points, the high bit of each cut
// byte choosing the direction.
func FuzzInspector(f *testing.F) {
	f.Add([]byte("${jndi:"), []byte("evil"), true, false, []byte("GET /${JNDI:ldap://x evil"), []byte{3, 5, 0x84, 2})
	f.Add([]byte("aab"), []byte("abab"), false, false, []byte("aaabababab"), []byte{1, 1, 1, 0x81, 1})
	f.Add([]byte("x"), []byte("X"), false, true, []byte("abcXdef"), []byte{0x82, 2})
	f.Fuzz(func(t *testing.T, pat0, pat1 []byte, nocase0, nocase1 bool, data, cuts []byte) {
		if len(pat0) == 0 || len(pat1) == 0 || len(pat0) > 32 || len(pat1) > 32 || len(data) > 1<<12 {
			t.Skip()
		}
		p := payloadPolicy(t, 0,
			RuleConfig{Name: "fz0", Payload: []PayloadConfig{{Contains: string(pat0), NoCase: nocase0}}, Action: "drop"},
			RuleConfig{Name: "fz1", Payload: []PayloadConfig{{Contains: string(pat1), NoCase: nocase1, Dir: "both"}}, Action: "reject"},
		)
		in := p.NewInspector(tcpFlow, p.Decide(tcpFlow))
		if in == nil {
			t.Fatal("nothing armed")
		}
		var streams [2][]byte
		p0, p1 := asciiFold(pat0, nocase0), asciiFold(pat1, nocase1)
		hitDone := false
		for i := 0; len(data) > 0 || i < len(cuts); i++ {
			n, dir := len(data), ToServer
			if i < len(cuts) {
				n, dir = min(int(cuts[i]&0x1f), len(data)), StreamDir(cuts[i]>>7)
			}
			chunk := data[:n]
			data = data[n:]
			streams[dir] = append(streams[dir], chunk...)
			want := -1
			switch {
			case hitDone:
			case bytes.Contains(asciiFold(streams[ToServer], nocase0), p0):
				want = 0
			case bytes.Contains(asciiFold(streams[ToServer], nocase1), p1) || bytes.Contains(asciiFold(streams[ToClient], nocase1), p1):
				want = 1
			}
			h, ok := in.Feed(dir, chunk)
			if ok != (want >= 0) || (ok && h.Rule != want) {
				t.Fatalf("feed %d dir %d %q: hit=%v rule=%d, want rule %d (server %q client %q)", i, dir, chunk, ok, h.Rule, want, streams[0], streams[1])
			}
			if ok {
				hitDone = true
			}
			if i >= len(cuts) && len(data) == 0 {
				break
			}
		}
	})
}
