package test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/tungate/tungate/internal/lab"
)

const bigUDPPort = 7421

// TestLargeDatagrams sends UDP datagrams larger than the path MTU through
// the gateway and has the server echo each back, so both directions are
// fragmented: the client's fragments are reassembled in front of the
// filter, and the gateway fragments the server's answer again on its way
// to the client. It also pings with a 3,000-byte payload. Every datagram
// must arrive whole (SHA-256) in both families.
func TestLargeDatagrams(t *testing.T) {
	l := newLab(t)
	sock := filepath.Join(t.TempDir(), "tungate.sock")
	startGateway(t, l, gatewayConfigAt(sock, fmt.Sprintf(`
[[rule]]
name     = "big-udp"
proto    = "udp"
dst_port = %d
action   = "allow"

[[rule]]
name   = "ping"
proto  = ["icmp", "icmpv6"]
action = "allow"
`, bigUDPPort)))

	for _, fam := range []struct {
		name string
		srv  netip.Addr
		net  string
		max  int
	}{
		{"ipv4", lab.ServerV4, "udp4", 65507},
		{"ipv6", lab.ServerV6, "udp6", 65527},
	} {
		t.Run(fam.name, func(t *testing.T) {
			pc, err := l.Server.ListenPacket(fam.net, netip.AddrPortFrom(fam.srv, bigUDPPort).String())
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			go func() { // owned by this test: ends when pc is closed
				buf := make([]byte, 65536)
				for {
					n, from, err := pc.ReadFrom(buf)
					if err != nil {
						return
					}
					_, _ = pc.WriteTo(buf[:n], from)
				}
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, err := l.Client.Dial(ctx, fam.net, netip.AddrPortFrom(fam.srv, bigUDPPort).String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for _, size := range []int{1473, 3000, 9000, 65000, fam.max} {
				if err := echoDatagram(c, size); err != nil {
					t.Errorf("%d-byte datagram: %v", size, err)
				}
			}
			data := make([]byte, 3000)
			_, _ = rand.Read(data)
			if err := l.Client.PingData(ctx, fam.srv, data, 5*time.Second); err != nil {
				t.Errorf("ping with 3000 bytes: %v", err)
			}
		})
	}

	// The gateway reassembled them: nothing reached the server unfiltered.
	out, errOut, code := cli(t, l, "conntrack", "-s", sock, "--stats", "--json")
	var st struct {
		Fragments struct {
			Fragments, Reassembled uint64
			Dropped                map[string]uint64
		} `json:"fragments"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("tungate conntrack --stats --json: exit %d\n%s%s", code, out, errOut)
	}
	// Each family sent five datagrams and a 3,000-byte ping, all beyond
	// the 1,500-byte MTU, so all were fragmented (1,473 bytes of IPv4 UDP
	// is the first size that is).
	if st.Fragments.Reassembled < 10 || len(st.Fragments.Dropped) != 0 {
		t.Errorf("reassembly counters %+v; want at least 10 datagrams reassembled, none dropped", st.Fragments)
	}
}

// echoDatagram sends one random datagram of size bytes on c and waits for
// it to come back intact, retrying a few times (UDP may lose one).
func echoDatagram(c net.Conn, size int) error {
	out := make([]byte, size)
	_, _ = rand.Read(out)
	want := sha256.Sum256(out)
	in := make([]byte, 65536)
	var last error
	for range 3 {
		if _, err := c.Write(out); err != nil {
			return err
		}
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, err := c.Read(in)
		if err != nil {
			last = err
			continue
		}
		if got := sha256.Sum256(in[:n]); n != size || !bytes.Equal(got[:], want[:]) {
			return fmt.Errorf("came back as %d bytes, sha256 %x; want %d bytes, %x", n, got[:6], size, want[:6])
		}
		return nil
	}
	return fmt.Errorf("no echo: %v", last)
}
