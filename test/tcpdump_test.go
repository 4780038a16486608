package test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tungate/tungate/internal/lab"
)

// tcpdumpPort is unusual on purpose: nothing else in the lab uses it, so
// every packet on it in the capture belongs to the test connection.
const tcpdumpPort = 47321

// TestTcpdumpOnTun captures on tungate0 inside the gateway namespace while a
// connection goes through, and checks that the capture holds that
// connection's packets both ways: the supported debugging path (docs/operations.md).
func TestTcpdumpOnTun(t *testing.T) {
	tcpdump := requireTool(t, "tcpdump")
	l := newLab(t)
	startGateway(t, l, gatewayConfig(t, allowTCPRule("dump", tcpdumpPort)))

	dst := netip.AddrPortFrom(lab.ServerV4, tcpdumpPort)
	serve(t, l.Server, dst, echo)

	pcap := filepath.Join(t.TempDir(), "tun.pcap")
	stop := startCapture(t, l.Gateway, tcpdump, pcap)

	c, err := dialTimeout(l.Client, dst, 10*time.Second)
	if err != nil {
		stop()
		t.Fatalf("dial %s through the gateway: %v", dst, err)
	}
	cport := c.LocalAddr().(*net.TCPAddr).Port
	if err := exchange(c, 10*time.Second); err != nil {
		t.Errorf("exchange: %v", err)
	}
	c.Close()

	// Packets reach the file as tcpdump sees them (--immediate-mode, -U);
	// read it until the connection's end is in, or give up after a while.
	fwd := fmt.Sprintf("%s.%d > %s.%d:", lab.ClientV4, cport, lab.ServerV4, tcpdumpPort)
	rev := fmt.Sprintf("%s.%d > %s.%d:", lab.ServerV4, tcpdumpPort, lab.ClientV4, cport)
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		// A read racing a write may see a torn last packet; the next try
		// or the final read after stop settles it.
		if got, err := readCapture(tcpdump, pcap, fwd, rev); err == nil && got.complete() {
			break
		}
	}
	stop()
	got, err := readCapture(tcpdump, pcap, fwd, rev)
	if err != nil {
		t.Fatal(err)
	}

	t.Logf("capture: %d packets client->server, %d server->client on port %d", got.nFwd, got.nRev, tcpdumpPort)
	if got.nFwd == 0 || got.nRev == 0 {
		t.Errorf("capture lacks a direction of the connection (%q: %d, %q: %d); capture:\n%s", fwd, got.nFwd, rev, got.nRev, got.text)
	}
	if !got.syn || !got.synAck {
		t.Errorf("handshake not captured (SYN %v, SYN-ACK %v); capture:\n%s", got.syn, got.synAck, got.text)
	}
	if !got.data {
		t.Errorf("no client payload segment captured; capture:\n%s", got.text)
	}
}

// capture is what `tcpdump -r` shows of one connection.
type capture struct {
	text                   string
	nFwd, nRev             int
	syn, synAck, data, fin bool
}

func (c capture) complete() bool { return c.syn && c.synAck && c.data && c.fin && c.nRev > 0 }

// readCapture parses the packets so far: fwd and rev are the
// "src.port > dst.port:" prefixes of the two directions.
func readCapture(tcpdump, file, fwd, rev string) (capture, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, tcpdump, "-r", file, "-n", "-tt").CombinedOutput()
	if err != nil {
		return capture{}, fmt.Errorf("tcpdump -r: %w\n%s", err, out)
	}
	c := capture{text: string(out)}
	for _, line := range strings.Split(c.text, "\n") {
		switch {
		case strings.Contains(line, fwd):
			c.nFwd++
			c.syn = c.syn || strings.Contains(line, "Flags [S]")
			c.data = c.data || lengthRe.MatchString(line)
			c.fin = c.fin || strings.Contains(line, "Flags [F")
		case strings.Contains(line, rev):
			c.nRev++
			c.synAck = c.synAck || strings.Contains(line, "Flags [S.]")
		}
	}
	return c, nil
}

// lengthRe matches a TCP segment line with a payload.
var lengthRe = regexp.MustCompile(`length [1-9][0-9]*$`)

// startCapture runs tcpdump on the TUN inside ns, writing packets to file
// as they come (-U), and returns once tcpdump says it is listening. The
// returned stop sends SIGINT, which makes tcpdump flush and exit, and waits.
func startCapture(t *testing.T, ns lab.NS, tcpdump, file string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	// -Z root: tcpdump otherwise drops to its own user and cannot write
	// into the test's root-owned temporary directory.
	cmd := ns.Command(ctx, tcpdump, "-i", tunName, "-n", "-U", "--immediate-mode", "-Z", "root", "-w", file)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start tcpdump: %v", err)
	}
	listening := make(chan struct{})
	var lines []string // written by the reader goroutine until drained closes
	heard := false
	drained := make(chan struct{})
	// Ends when tcpdump closes its stderr, i.e. exits.
	go func() {
		defer close(drained)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines = append(lines, sc.Text())
			if strings.Contains(sc.Text(), "listening on") && !heard {
				heard = true
				close(listening)
			}
		}
	}()
	var stopped bool
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cmd.Process.Signal(syscall.SIGINT)
		<-drained
		err := cmd.Wait()
		cancel()
		t.Logf("tcpdump: %s (exit: %v)", strings.Join(lines, " | "), err)
	}
	t.Cleanup(stop)
	select {
	case <-listening:
	case <-drained:
		stop()
		t.Fatalf("tcpdump exited before listening: %s", strings.Join(lines, "\n"))
	case <-time.After(15 * time.Second):
		stop()
		t.Fatalf("tcpdump not listening after 15s: %s", strings.Join(lines, "\n"))
	}
	return stop
}
