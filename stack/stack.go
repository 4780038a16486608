// Package stack is tungate's data plane: the filter hook that parses every
// packet read from the TUN and asks conntrack and policy about it, the
// gVisor netstack (behind a link endpoint over tun.Device) that terminates
// allowed TCP and UDP flows, the forwarders that dial the real destinations
// through the egress interface and relay both ways, ICMP echo forwarding,
// reject synthesis and the decision log.
package stack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	gstack "gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"

	"github.com/tungate/tungate/conntrack"
	"github.com/tungate/tungate/policy"
	"github.com/tungate/tungate/tun"
)

// Echoer forwards one ICMP echo for real and returns the reply's payload;
// *Pinger implements it. Tests substitute fakes.
type Echoer interface {
	Echo(ctx context.Context, dst netip.Addr, id, seq uint16, payload []byte, timeout time.Duration) ([]byte, error)
}

var _ Echoer = (*Pinger)(nil)

// Options configure a Stack. Config and Egress get their defaults applied
// by New. The hooks at the end replace the egress side so the whole
// pipeline runs in unit tests without root; production leaves them nil.
type Options struct {
	Config    Config
	Egress    EgressConfig
	MTU       int
	Devices   []tun.Device
	Conntrack *conntrack.Table
	Policy    *policy.Policy
	Log       *slog.Logger // decision lines and operational messages; nil discards

	DialTCP func(ctx context.Context, dst netip.AddrPort) (*net.TCPConn, error) // nil: Dialer.DialTCP
	DialUDP func(ctx context.Context, dst netip.AddrPort) (*net.UDPConn, error) // nil: Dialer.DialUDP
	Echoer  Echoer                                                              // nil: a Pinger on the egress interface
}

// nicID is the one NIC the gVisor stack has.
const nicID tcpip.NICID = 1

// echoTimeout is how long a forwarded echo waits for its reply, like
// ping's default -W.
const echoTimeout = 10 * time.Second

// maxEchoes bounds concurrent forwarded echoes; more are dropped (and
// counted) rather than queued, as a ping flood deserves.
const maxEchoes = 256

// Stack is the running data plane. Create it with New, start it with Run.
type Stack struct {
	cfg    Config
	egress EgressConfig
	mtu    int
	devs   []tun.Device
	ct     *conntrack.Table
	pol    atomic.Pointer[policy.Policy]
	log    *slog.Logger
	dlog   *decisionLog
	ctr    counters

	rejects  *bucket       // [reject] max_rate
	flowReg  *flowRegistry // relays' cancels, SYN-time verdicts
	l7       *l7Table      // per-flow L7 fields and UDP DNS verdicts (l7info.go)
	rechecks recheckSet    // flows a reload asked to decide again
	flushes  *flushQueue   // add_to flush_flows requests for the flusher
	// srcCount is conntrack's per-source flow count for max_conns, nil
	// when the table offers none (SrcConns then stays 0).
	srcCount sourceCounter

	gs     *gstack.Stack
	link   *linkEndpoint
	txPool sync.Pool // *txBatch

	dialTCP func(ctx context.Context, dst netip.AddrPort) (*net.TCPConn, error)
	dialUDP func(ctx context.Context, dst netip.AddrPort) (*net.UDPConn, error)
	echo    Echoer
	pinger  *Pinger       // closed by Run's teardown when New created it
	echoSem chan struct{} // one token per echo in flight

	// flowCtx ends every flow goroutine (forwarder handlers, relays,
	// echoes); Run cancels it at teardown and then waits on flows.
	flowCtx    context.Context
	cancelFlow context.CancelFunc

	mu      sync.Mutex // guards closed, so flows.Add never races flows.Wait
	closed  bool
	flows   sync.WaitGroup
	running atomic.Bool
}

// New builds the gVisor stack over opts.Devices. Nothing runs until Run.
func New(opts Options) (*Stack, error) {
	if len(opts.Devices) == 0 {
		return nil, errors.New("stack: no devices")
	}
	if opts.Conntrack == nil || opts.Policy == nil {
		return nil, errors.New("stack: Conntrack and Policy are required")
	}
	opts.Config.Defaults()
	opts.Egress.Defaults()
	if err := opts.Config.Validate().Err(); err != nil {
		return nil, err
	}
	if err := opts.Egress.Validate().Err(); err != nil {
		return nil, err
	}
	if opts.MTU == 0 {
		opts.MTU = 1500
	}
	if opts.MTU < header.IPv6MinimumMTU || opts.MTU > 65535 {
		return nil, fmt.Errorf("stack: MTU %d out of range [%d, 65535]", opts.MTU, header.IPv6MinimumMTU)
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Stack{
		cfg:     opts.Config,
		egress:  opts.Egress,
		mtu:     opts.MTU,
		devs:    opts.Devices,
		ct:      opts.Conntrack,
		log:     log,
		dialTCP: opts.DialTCP,
		dialUDP: opts.DialUDP,
		echo:    opts.Echoer,
		echoSem: make(chan struct{}, maxEchoes),
	}
	s.dlog = newDecisionLog(log, &s.ctr.logSuppressed, nil)
	s.rejects = newBucket(nil)
	s.flowReg = newFlowRegistry()
	s.l7 = newL7Table()
	s.flushes = newFlushQueue()
	s.srcCount, _ = any(opts.Conntrack).(sourceCounter)
	s.SetPolicy(opts.Policy)
	if s.dialTCP == nil || s.dialUDP == nil {
		d := NewDialer(opts.Egress)
		if s.dialTCP == nil {
			s.dialTCP = d.DialTCP
		}
		if s.dialUDP == nil {
			s.dialUDP = d.DialUDP
		}
	}
	if s.echo == nil {
		p, err := NewPinger(opts.Egress, log)
		if err != nil {
			return nil, fmt.Errorf("stack: icmp echo: %w", err)
		}
		s.echo, s.pinger = p, p
	}
	s.flowCtx, s.cancelFlow = context.WithCancel(context.Background())
	if err := s.buildNetstack(); err != nil {
		s.cancelFlow()
		if s.pinger != nil {
			_ = s.pinger.Close()
		}
		return nil, err
	}
	return s, nil
}

// buildNetstack creates the gVisor stack: both IP versions, TCP and UDP,
// one promiscuous, spoofing NIC (it must accept and originate packets for
// any address) with default routes for both families, and the forwarders.
func (s *Stack) buildNetstack() error {
	gs := gstack.New(gstack.Options{
		NetworkProtocols:   []gstack.NetworkProtocolFactory{ipv4.NewProtocol, ipv6.NewProtocol},
		TransportProtocols: []gstack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol},
	})
	fail := func(what string, err tcpip.Error) error {
		gs.Destroy()
		return fmt.Errorf("stack: %s: %s", what, err)
	}
	sack := tcpip.TCPSACKEnabled(true)
	if err := gs.SetTransportProtocolOption(tcp.ProtocolNumber, &sack); err != nil {
		return fail("tcp sack", err)
	}
	rcv := tcpip.TCPReceiveBufferSizeRangeOption{Min: tcp.MinBufferSize, Default: tcp.DefaultReceiveBufferSize, Max: int(s.cfg.TCPReceiveBufferMax)}
	rcv.Default = min(rcv.Default, rcv.Max)
	if err := gs.SetTransportProtocolOption(tcp.ProtocolNumber, &rcv); err != nil {
		return fail("tcp receive buffer", err)
	}
	snd := tcpip.TCPSendBufferSizeRangeOption{Min: tcp.MinBufferSize, Default: tcp.DefaultSendBufferSize, Max: int(s.cfg.TCPSendBufferMax)}
	snd.Default = min(snd.Default, snd.Max)
	if err := gs.SetTransportProtocolOption(tcp.ProtocolNumber, &snd); err != nil {
		return fail("tcp send buffer", err)
	}
	cc := tcpip.CongestionControlOption(s.cfg.CongestionControl)
	if err := gs.SetTransportProtocolOption(tcp.ProtocolNumber, &cc); err != nil {
		return fail("tcp congestion control", err)
	}
	mod := tcpip.TCPModerateReceiveBufferOption(true)
	if err := gs.SetTransportProtocolOption(tcp.ProtocolNumber, &mod); err != nil {
		return fail("tcp moderate receive buffer", err)
	}
	if err := tuneTCP(gs); err != nil {
		return fail("tcp time-wait", err)
	}

	s.link = newLinkEndpoint(s, uint32(s.mtu))
	if err := gs.CreateNICWithOptions(nicID, s.link, gstack.NICOptions{Name: "tungate"}); err != nil {
		return fail("create nic", err)
	}
	if err := gs.SetPromiscuousMode(nicID, true); err != nil {
		return fail("promiscuous mode", err)
	}
	if err := gs.SetSpoofing(nicID, true); err != nil {
		return fail("spoofing", err)
	}
	gs.SetRouteTable([]tcpip.Route{
		{Destination: header.IPv4EmptySubnet, NIC: nicID},
		{Destination: header.IPv6EmptySubnet, NIC: nicID},
	})
	tf := tcp.NewForwarder(gs, 0, s.cfg.TCPMaxInFlight, s.handleTCP)
	gs.SetTransportProtocolHandler(tcp.ProtocolNumber, tf.HandlePacket)
	uf := udp.NewForwarder(gs, s.handleUDP)
	gs.SetTransportProtocolHandler(udp.ProtocolNumber, uf.HandlePacket)
	s.gs = gs
	return nil
}

// Run reads every device until ctx is done, then tears down in order:
// it closes the devices (Stack owns them from New on, and closing is what
// unblocks their readers), ends every flow and waits for its goroutines,
// and destroys the gVisor stack. Run may be called once.
func (s *Stack) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("stack: Run called twice")
	}
	var helpers sync.WaitGroup
	helpers.Add(2)
	// The flusher and the janitor end with ctx, before the teardown.
	go func() { defer helpers.Done(); s.runFlusher(ctx) }()
	go func() { defer helpers.Done(); s.runJanitor(ctx) }()
	var readers sync.WaitGroup
	for _, d := range s.devs {
		readers.Add(1)
		// Each reader ends when its device is closed below.
		go func() {
			defer readers.Done()
			s.readLoop(ctx, d)
		}()
	}
	<-ctx.Done()
	for _, d := range s.devs {
		_ = d.Close()
	}
	readers.Wait()
	helpers.Wait()

	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancelFlow()
	// Aborting gVisor's endpoints unblocks relays stuck on the client side.
	s.gs.Close()
	s.flows.Wait()
	s.gs.Wait()
	if s.pinger != nil {
		_ = s.pinger.Close()
	}
	return nil
}

// startFlow registers one flow goroutine; false means the Stack is shutting
// down and the flow must not start. Every true is paired with flows.Done.
func (s *Stack) startFlow() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.flows.Add(1)
	return true
}

// SetPolicy makes p decide every flow that starts from now on. Established
// flows keep the verdict cached in conntrack, unless p has [reload]
// existing_flows = "recheck": then each tracked flow is decided again by p
// on its next inbound packet, and ended when p no longer allows it.
func (s *Stack) SetPolicy(p *policy.Policy) {
	s.dlog.setRate(p.LogRate())
	r := p.RejectMaxRate()
	s.rejects.set(r, max(int(r), 1))
	old := s.pol.Swap(p)
	if old != nil && p.RecheckExistingFlows() {
		s.rechecks.mark(s.ct)
	}
}

// runJanitor periodically summarises suppressed decision lines and prunes
// the flow registries of flows conntrack no longer has, until ctx is done.
// It is owned by Run.
func (s *Stack) runJanitor(ctx context.Context) {
	t := time.NewTicker(janitorEvery)
	defer t.Stop()
	var pass uint64
	for {
		select {
		case <-ctx.Done():
			s.dlog.flushSuppressed()
			return
		case <-t.C:
			pass++
			s.dlog.flushSuppressed()
			s.flowReg.pruneArmed(s.ct, time.Now())
			s.l7.prune(s.ct, time.Now())
			s.rechecks.prune(s.ct, pass)
		}
	}
}

// Stats returns a snapshot of the counters.
func (s *Stack) Stats() Stats { return s.ctr.snapshot() }
