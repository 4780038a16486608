package test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tungate/tungate/control"
	"github.com/tungate/tungate/internal/lab"
)

const (
	floodPort     = 47500
	floodMaxFlows = 20000
	// floodPackets spoofed SYNs, sent at about floodPPS, but never for
	// longer than floodMax: bounded in count and in time.
	floodPackets = 60000
	floodPPS     = 6000
	floodMax     = 10 * time.Second
	// floodRateWindow is how long the transfer's throughput is sampled
	// before the flood.
	floodRateWindow = 2 * time.Second
	// floodTransferMax bounds the whole transfer; a hang detector.
	floodTransferMax = 3 * time.Minute
	// floodPoll is how often the table's size is read during the flood.
	floodPoll = 20 * time.Millisecond
)

// floodSources is where the spoofed SYNs come from: inside the test range,
// outside every lab subnet, so no source is the real client's.
var floodSources = netip.MustParsePrefix("198.19.0.0/16")

// TestSynFloodKeepsEstablished floods an allowed port with SYNs from
// spoofed sources into a gateway whose table holds floodMaxFlows flows,
// while an upload that started before the flood runs through the same
// gateway to the same port. It checks that the upload arrives intact
// (SHA-256), that the table never holds more than its limit while the
// limit was really reached, and that the upload's flow stays listed (the
// table evicts unassured flows, never an established one) and keeps
// moving data during the flood. The upload's throughput before and during
// the flood is logged, never asserted (house rule: no timing assertions).
func TestSynFloodKeepsEstablished(t *testing.T) {
	l := newLab(t)
	if floodSources.Overlaps(lab.ClientNetV4) || floodSources.Overlaps(lab.ServerNetV4) {
		t.Fatalf("flood sources %s overlap a lab subnet", floodSources)
	}
	// The gateway forwards a packet into the TUN only if the kernel would
	// route its source back out of lan0 (rp_filter), and gVisor's SYN-ACKs
	// to the spoofed sources need a way out: both through the client,
	// which drops them (it does not forward).
	if _, err := ipOut(t, l.Gateway, "route", "add", floodSources.String(), "via", lab.ClientV4.String(), "dev", lab.GatewayLANIf); err != nil {
		t.Fatal(err)
	}
	rpf, _ := l.Gateway.Sysctl("net/ipv4/conf/" + lab.GatewayLANIf + "/rp_filter")

	sock := filepath.Join(t.TempDir(), "tungate.sock")
	cfg := gatewayConfigAt(sock, allowTCPRule("flood", floodPort)) + fmt.Sprintf(`
[conntrack]
max_flows = %d
`, floodMaxFlows)
	startGateway(t, l, cfg)
	ctl := control.Client{Path: sock}

	dst := netip.AddrPortFrom(lab.ServerV4, floodPort)
	up := startUpload(t, l, dst)
	// Warm up: the flow is established and data moves before the flood.
	if !up.waitReceived(1<<20, 30*time.Second) {
		t.Fatalf("upload through the gateway did not get going: %d bytes after 30s (%v)", up.received.Load(), up.failure())
	}
	key := up.src
	if f, _, err := findFlow(ctl, key, dst); err != nil || f == nil || !f.Assured {
		t.Fatalf("upload flow %s -> %s before the flood: %+v, %v; want listed and assured", key, dst, f, err)
	}

	b0, t0 := up.received.Load(), time.Now()
	time.Sleep(floodRateWindow)
	b1, t1 := up.received.Load(), time.Now()
	rateBefore := float64(b1-b0) / t1.Sub(t0).Seconds()

	var before control.Stats
	if err := callCtl(ctl, control.OpConntrackStats, &before); err != nil {
		t.Fatalf("conntrack stats: %v", err)
	}
	poll := startStatsPoller(ctl)
	defer poll.stop()

	lanBefore, tunBefore := linkCounters(t, l.Gateway, lab.GatewayLANIf), linkCounters(t, l.Gateway, tunName)
	raw := newRawSender(t, l.Client)
	flood := make(chan floodResult, 1)
	fb0, ft0 := up.received.Load(), time.Now()
	// Ends after floodPackets or floodMax, whichever is first.
	go func() { flood <- synFlood(raw, dst) }()

	// Once the table is full, or evicting to keep unreplied flows within
	// their share of it, look for the upload's flow: in the middle of it.
	var midListed, midChecked bool
	var midFlows int
	var fr floodResult
	for done := false; !done; {
		select {
		case fr = <-flood:
			done = true
		case <-time.After(50 * time.Millisecond):
			if !midChecked && (poll.max.Load() >= floodMaxFlows || poll.evictions.Load() > before.EarlyDrop+before.Drop) {
				midChecked = true
				f, n, err := findFlow(ctl, key, dst)
				if err != nil {
					t.Errorf("listing flows during the flood: %v", err)
				}
				midListed, midFlows = f != nil, n
			}
		}
	}
	fb1, ft1 := up.received.Load(), time.Now()
	rateDuring := float64(fb1-fb0) / ft1.Sub(ft0).Seconds()
	if fr.err != nil {
		t.Errorf("flood: sending stopped after %d packets: %v", fr.sent, fr.err)
	}

	// A listing is consistent per shard only, so while flows are still
	// being inserted it may count one twice; list once inserts stopped.
	quiet := waitInsertsSettled(ctl)
	lanAfter, tunAfter := linkCounters(t, l.Gateway, lab.GatewayLANIf), linkCounters(t, l.Gateway, tunName)
	after, n, err := findFlow(ctl, key, dst)
	if err != nil {
		t.Errorf("listing flows after the flood: %v", err)
	}
	up.finish()
	res := up.wait(floodTransferMax)
	poll.stop()

	var st control.Stats
	if err := callCtl(ctl, control.OpConntrackStats, &st); err != nil {
		t.Errorf("conntrack stats after the flood: %v", err)
	}

	// Ratio of throughputs measured in this run; logged, never asserted.
	ratio := 0.0
	if rateBefore > 0 {
		ratio = rateDuring / rateBefore
	}
	t.Logf("flood: %d spoofed SYNs from %s in %v (%.0f/s); lan0 rp_filter=%s",
		fr.sent, floodSources, fr.took.Round(time.Millisecond), float64(fr.sent)/fr.took.Seconds(), rpf)
	t.Logf("upload throughput: before %.0f Mbit/s, during the flood %.0f Mbit/s, ratio during/before %.2f",
		rateBefore*8/1e6, rateDuring*8/1e6, ratio)
	t.Logf("table: max %d flows seen in %d polls (limit %d); listed %d mid-flood (while inserting) and %d after",
		poll.max.Load(), poll.polls.Load(), floodMaxFlows, midFlows, n)
	t.Logf("stats during the flood: insert +%d, early_drop +%d, drop +%d, insert_failed +%d, invalid +%d; now %v",
		st.Insert-before.Insert, st.EarlyDrop-before.EarlyDrop, st.Drop-before.Drop,
		st.InsertFailed-before.InsertFailed, st.Invalid-before.Invalid, st)
	// Where the SYNs that made no flow went: the kernel hands packets to
	// the TUN's queue, which drops when tungate reads slower.
	t.Logf("gateway links during the flood: %s rx +%d packets (dropped +%d); %s tx +%d packets (dropped +%d)",
		lab.GatewayLANIf, lanAfter.RX.Packets-lanBefore.RX.Packets, lanAfter.RX.Dropped-lanBefore.RX.Dropped,
		tunName, tunAfter.TX.Packets-tunBefore.TX.Packets, tunAfter.TX.Dropped-tunBefore.TX.Dropped)
	t.Logf("upload: %d bytes sent, %d received", res.sent, res.received)

	if res.err != nil {
		t.Errorf("upload: %v", res.err)
	} else if res.sent != res.received || res.sentSum != res.recvSum {
		t.Errorf("upload corrupted: sent %d bytes SHA-256 %x, received %d bytes SHA-256 %x",
			res.sent, res.sentSum, res.received, res.recvSum)
	}
	if err := poll.failure(); err != nil {
		t.Errorf("polling conntrack stats: %v", err)
	}
	if m := poll.max.Load(); m > floodMaxFlows {
		t.Errorf("the table held %d flows, over its limit of %d", m, floodMaxFlows)
	}
	if !quiet {
		t.Errorf("the gateway kept inserting flows for %v after the flood", floodSettle)
	} else if n > floodMaxFlows {
		t.Errorf("listed %d flows after the flood, over the limit of %d", n, floodMaxFlows)
	}
	// Without a full table the test would prove nothing about eviction.
	if poll.max.Load() < floodMaxFlows && st.EarlyDrop == before.EarlyDrop && st.Drop == before.Drop {
		t.Errorf("the flood never filled the table (max %d of %d flows, no early drop): %d of %d SYNs sent; nothing was tested",
			poll.max.Load(), floodMaxFlows, fr.sent, floodPackets)
	}
	if !midChecked {
		t.Errorf("the table neither filled nor evicted during the flood, so the upload's flow was not looked for then")
	} else if !midListed {
		t.Errorf("upload flow %s -> %s not listed while the table was full: evicted", key, dst)
	}
	if after == nil {
		t.Errorf("upload flow %s -> %s not listed after the flood: evicted", key, dst)
	} else if !after.Assured || after.State != "ESTABLISHED" {
		t.Errorf("upload flow after the flood: %+v, want ESTABLISHED and assured", *after)
	}
	if fb1 == fb0 {
		t.Errorf("the upload moved no data during the %v flood", ft1.Sub(ft0).Round(time.Millisecond))
	}
}

// floodResult is what synFlood did.
type floodResult struct {
	sent int
	took time.Duration
	err  error
}

// synFlood sends SYNs to dst from random sources in floodSources and random
// ports, paced at floodPPS, until floodPackets are out or floodMax passed.
func synFlood(raw *rawSender, dst netip.AddrPort) floodResult {
	const batch = 100
	start := time.Now()
	base := floodSources.Addr().As4()
	hostBits := 32 - floodSources.Bits()
	buf := make([]byte, 64)
	sent := 0
	for sent < floodPackets {
		elapsed := time.Since(start)
		if elapsed >= floodMax {
			break
		}
		// Pace: sleep until the batch is due.
		if due := time.Duration(sent) * time.Second / floodPPS; due > elapsed {
			time.Sleep(due - elapsed)
		}
		for range min(batch, floodPackets-sent) {
			// Never the subnet's first or last address.
			h := 1 + mrand.Uint32N(1<<hostBits-2)
			a := base
			a[2] |= byte(h >> 8)
			a[3] |= byte(h)
			src := netip.AddrPortFrom(netip.AddrFrom4(a), uint16(1024+mrand.IntN(64511)))
			seg := tcpSegment{src: src, dst: dst, flags: tcpSYN, seq: mrand.Uint32(), win: 64240}
			if err := raw.send(buildTCP4(buf, seg), dst.Addr()); err != nil {
				return floodResult{sent: sent, took: time.Since(start), err: err}
			}
			sent++
		}
	}
	return floodResult{sent: sent, took: time.Since(start)}
}

// linkStats are an interface's counters as `ip -s -j link` prints them.
type linkStats struct {
	RX struct{ Packets, Dropped uint64 } `json:"rx"`
	TX struct{ Packets, Dropped uint64 } `json:"tx"`
}

// linkCounters reads dev's counters inside ns; for the log only, so a
// failure is logged and reads as zero.
func linkCounters(t *testing.T, ns lab.NS, dev string) linkStats {
	t.Helper()
	out, err := ipOut(t, ns, "-s", "-j", "link", "show", "dev", dev)
	var links []struct {
		Stats linkStats `json:"stats64"`
	}
	if err == nil {
		err = json.Unmarshal([]byte(out), &links)
	}
	if err != nil || len(links) != 1 {
		t.Logf("counters of %s: %v (%d links)", dev, err, len(links))
		return linkStats{}
	}
	return links[0].Stats
}

// floodSettle bounds the wait for the gateway to finish the flood's
// backlog after the last SYN was sent.
const floodSettle = 15 * time.Second

// waitInsertsSettled waits until the table's insert counter stands still
// across a few polls, and reports whether it did within floodSettle.
func waitInsertsSettled(c control.Client) bool {
	const still = 5
	last, same := uint64(0), 0
	for end := time.Now().Add(floodSettle); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		var st control.Stats
		if err := callCtl(c, control.OpConntrackStats, &st); err != nil {
			return false
		}
		if st.Insert == last {
			if same++; same >= still {
				return true
			}
		} else {
			last, same = st.Insert, 0
		}
	}
	return false
}

// callCtl is one control call, bounded.
func callCtl(c control.Client, op string, out any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.Call(ctx, op, nil, out)
}

// findFlow lists the gateway's flows and returns the TCP one from src to
// dst (nil if absent) and how many flows were listed. It talks to the
// control socket directly, the protocol `tungate conntrack --json` speaks:
// the socket is a file, reachable from any network namespace.
func findFlow(c control.Client, src, dst netip.AddrPort) (*control.Flow, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var found *control.Flow
	n := 0
	err := c.Stream(ctx, control.OpConntrackList, nil, func(dec *json.Decoder) error {
		var f control.Flow
		if err := dec.Decode(&f); err != nil {
			return err
		}
		n++
		if f.Proto == "tcp" && f.Orig.Src == src.Addr() && f.Orig.SrcPort == src.Port() &&
			f.Orig.Dst == dst.Addr() && f.Orig.DstPort == dst.Port() {
			found = &f
		}
		return nil
	})
	return found, n, err
}

// statsPoller reads the table's counters every floodPoll and keeps the
// largest flow count seen and the latest number of evictions.
type statsPoller struct {
	max, polls atomic.Int64
	evictions  atomic.Uint64 // early_drop + drop
	quit       chan struct{}
	done       chan struct{}
	once       sync.Once

	mu  sync.Mutex // guards err
	err error      // the first failed poll
}

func startStatsPoller(c control.Client) *statsPoller {
	p := &statsPoller{quit: make(chan struct{}), done: make(chan struct{})}
	// Owned by p; ends on stop.
	go func() {
		defer close(p.done)
		tick := time.NewTicker(floodPoll)
		defer tick.Stop()
		for {
			var st control.Stats
			if err := callCtl(c, control.OpConntrackStats, &st); err != nil {
				p.mu.Lock()
				if p.err == nil {
					p.err = err
				}
				p.mu.Unlock()
			} else {
				p.polls.Add(1)
				p.evictions.Store(st.EarlyDrop + st.Drop)
				for m := p.max.Load(); int64(st.Flows) > m && !p.max.CompareAndSwap(m, int64(st.Flows)); m = p.max.Load() {
				}
			}
			select {
			case <-p.quit:
				return
			case <-tick.C:
			}
		}
	}()
	return p
}

func (p *statsPoller) stop() {
	p.once.Do(func() { close(p.quit) })
	<-p.done
}

func (p *statsPoller) failure() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// upload is an open-ended client -> server transfer of pseudo-random bytes
// that runs until finish, so it spans however long the flood takes.
type upload struct {
	src      netip.AddrPort // the client's end
	received atomic.Int64   // bytes the server has read so far
	stopping atomic.Bool

	client, server chan sideResult
	conn           net.Conn

	mu  sync.Mutex // guards err
	err error      // the first failure of either side, for early reports
}

// uploadResult compares both ends.
type uploadResult struct {
	sent, received   int64
	sentSum, recvSum [sha256.Size]byte
	err              error
}

// startUpload connects from the client to dst through the gateway and
// starts writing; the server's end hashes what it reads. The first 16
// bytes are a token, so a flood connection the gateway relays can never
// be mistaken for the upload.
func startUpload(t *testing.T, l *lab.Lab, dst netip.AddrPort) *upload {
	t.Helper()
	ln, err := l.Server.Listen("tcp", dst.String())
	if err != nil {
		t.Fatalf("listen %s: %v", dst, err)
	}
	var token [16]byte
	rand.Read(token[:])
	u := &upload{client: make(chan sideResult, 1), server: make(chan sideResult, 1)}
	deadline := time.Now().Add(floodTransferMax)

	var wg sync.WaitGroup
	// The accept loop ends when the cleanup closes ln. The upload is the
	// first connection; every later one (the gateway relaying the flood's
	// SYNs) is closed at once.
	wg.Go(func() {
		first := true
		for {
			c, err := ln.Accept()
			if err != nil {
				if first {
					u.server <- sideResult{err: err}
				}
				return
			}
			if !first {
				c.Close()
				continue
			}
			first = false
			wg.Go(func() {
				defer c.Close()
				c.SetDeadline(deadline)
				u.server <- u.sink(c, token)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		if u.conn != nil {
			u.conn.Close()
		}
		wg.Wait()
	})

	conn, err := dialTimeout(l.Client, dst, 10*time.Second)
	if err != nil {
		t.Fatalf("dial %s through the gateway: %v", dst, err)
	}
	u.conn = conn
	conn.SetDeadline(deadline)
	a := conn.LocalAddr().(*net.TCPAddr).AddrPort()
	u.src = netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
	// Ends when finish is called or the connection fails.
	go func() { u.client <- u.source(conn, token) }()
	return u
}

func (u *upload) fail(err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.err == nil {
		u.err = err
	}
}

func (u *upload) failure() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.err
}

func (u *upload) source(conn net.Conn, token [16]byte) sideResult {
	if _, err := conn.Write(token[:]); err != nil {
		u.fail(err)
		return sideResult{err: fmt.Errorf("client: token: %w", err)}
	}
	var seed [32]byte
	rand.Read(seed[:])
	rng := mrand.NewChaCha8(seed)
	h := sha256.New()
	buf := make([]byte, 64<<10)
	var n int64
	for !u.stopping.Load() {
		rng.Read(buf)
		h.Write(buf)
		if _, err := conn.Write(buf); err != nil {
			u.fail(err)
			return sideResult{n: n, err: fmt.Errorf("client after %d bytes: %w", n, err)}
		}
		n += int64(len(buf))
	}
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		return sideResult{n: n, err: fmt.Errorf("client: close write: %w", err)}
	}
	return sideResult{n: n, sum: h.Sum(nil)}
}

func (u *upload) sink(c net.Conn, token [16]byte) sideResult {
	var got [16]byte
	if _, err := io.ReadFull(c, got[:]); err != nil {
		u.fail(err)
		return sideResult{err: fmt.Errorf("server: token: %w", err)}
	}
	if got != token {
		err := errors.New("server: the first connection is not the upload")
		u.fail(err)
		return sideResult{err: err}
	}
	h := sha256.New()
	buf := make([]byte, 256<<10)
	var n int64
	for {
		m, err := c.Read(buf)
		h.Write(buf[:m])
		n += int64(m)
		u.received.Store(n)
		if err == io.EOF {
			return sideResult{n: n, sum: h.Sum(nil)}
		}
		if err != nil {
			u.fail(err)
			return sideResult{n: n, err: fmt.Errorf("server after %d bytes: %w", n, err)}
		}
	}
}

// waitReceived waits up to timeout for the server to have read n bytes.
func (u *upload) waitReceived(n int64, timeout time.Duration) bool {
	for end := time.Now().Add(timeout); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if u.received.Load() >= n {
			return true
		}
		if u.failure() != nil {
			return false
		}
	}
	return false
}

// finish tells the client to stop writing and half-close.
func (u *upload) finish() { u.stopping.Store(true) }

// wait collects both ends, bounded by timeout.
func (u *upload) wait(timeout time.Duration) uploadResult {
	var r uploadResult
	to := time.NewTimer(timeout)
	defer to.Stop()
	var cl, sv sideResult
	for got := 0; got < 2; got++ {
		select {
		case cl = <-u.client:
		case sv = <-u.server:
		case <-to.C:
			r.err = fmt.Errorf("upload did not finish within %v (server has %d bytes)", timeout, u.received.Load())
			return r
		}
	}
	r.sent, r.received = cl.n, sv.n
	copy(r.sentSum[:], cl.sum)
	copy(r.recvSum[:], sv.sum)
	r.err = errors.Join(cl.err, sv.err)
	return r
}
