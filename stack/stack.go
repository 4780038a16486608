// Package stack is tungate's data plane: the filter hook that parses every
// packet read from the TUN and asks conntrack and policy about it, the
// gVisor netstack (behind a link endpoint over tun.Device) that terminates
// allowed TCP and UDP flows, the forwarders that hand those flows to their
// relays, and ICMP echo forwarding. The jobs around it live in packages of
// their own: packet (wire format: parsing and synthesized replies),
// verdict (carrying out decisions and the per-flow state beside
// conntrack), l7gate (flows decided on their byte stream), relay,
// egress (upstream sockets) and decisionlog. docs/ARCHITECTURE.md follows
// a packet through all of them.
//
// It knows nothing of TOML or the control socket: cmd/tungate wires it.
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
	"github.com/tungate/tungate/stack/decisionlog"
	"github.com/tungate/tungate/stack/egress"
	"github.com/tungate/tungate/stack/l7gate"
	"github.com/tungate/tungate/stack/reassembly"
	"github.com/tungate/tungate/stack/verdict"
	"github.com/tungate/tungate/tun"
)

// Echoer forwards one ICMP echo for real and returns the reply's payload;
// *egress.Pinger implements it. Tests substitute fakes.
type Echoer interface {
	Echo(ctx context.Context, dst netip.Addr, id, seq uint16, payload []byte, timeout time.Duration) ([]byte, error)
}

var _ Echoer = (*egress.Pinger)(nil)

// Options configure a Stack. Config and Egress get their defaults applied
// by New. The hooks at the end replace the egress side so the whole
// pipeline runs in unit tests without root; production leaves them nil.
type Options struct {
	Config  Config
	Egress  EgressConfig
	MTU     int
	Devices []tun.Device
	// Fragments configures reassembly in front of the filter.
	Fragments FragmentsConfig
	// Conntrack configures the flow table, which the Stack creates: the
	// per-flow state it keeps beside the table follows the table's
	// entries through their destroy callback (Conntrack returns it).
	Conntrack conntrack.Config
	Policy    *policy.Policy
	Log       *slog.Logger // decision lines and operational messages; nil discards

	DialTCP func(ctx context.Context, dst netip.AddrPort) (*net.TCPConn, error) // nil: egress.Dialer.DialTCP
	DialUDP func(ctx context.Context, dst netip.AddrPort) (*net.UDPConn, error) // nil: egress.Dialer.DialUDP
	Echoer  Echoer                                                              // nil: a Pinger on the egress interface
	Clock   func() time.Time                                                    // the budgets' clock (decision log, [reject] max_rate); nil: time.Now
}

// nicID is the one NIC the gVisor stack has.
const nicID tcpip.NICID = 1

// echoTimeout is how long a forwarded echo waits for its reply, like
// ping's default -W.
const echoTimeout = 10 * time.Second

// The budget of relayed ICMP errors: Linux's net.ipv4.icmp_msgs_per_sec
// and icmp_msgs_burst.
const (
	icmpErrorsPerSecond = 1000
	icmpErrorBurst      = 50
)

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
	frags  *reassembly.Reassembler // fragments wait here for their datagram
	pol    atomic.Pointer[policy.Policy]
	log    *slog.Logger
	dlog   *decisionlog.Log
	apply  *verdict.Applier // every verdict's side effects
	flows  *verdict.Flows   // per-flow state beside conntrack
	gate   *l7gate.Gate     // flows decided on their byte stream
	ctr    counters

	gs     *gstack.Stack
	link   *linkEndpoint
	txPool sync.Pool     // *txBatch
	fragID atomic.Uint32 // identification of the fragments the gateway cuts
	// icmpBudget bounds the ICMP errors the gateway relays from the
	// upstream side, as a router's icmp_ratelimit does.
	icmpBudget *decisionlog.Bucket

	dialTCP  func(ctx context.Context, dst netip.AddrPort) (*net.TCPConn, error)
	dialUDP  func(ctx context.Context, dst netip.AddrPort) (*net.UDPConn, error)
	upstream tcpDialer // dialTCP, counting failures: the forwarder's and the L7 gate's dial
	echo     Echoer
	pinger   *egress.Pinger // closed by Run's teardown when New created it
	echoSem  chan struct{}  // one token per echo in flight

	// flowCtx ends every flow goroutine (forwarder handlers, relays,
	// echoes); Run cancels it at teardown and then waits on flows.
	flowCtx    context.Context
	cancelFlow context.CancelFunc

	mu      sync.Mutex // guards closed, so flows.Add never races flows.Wait
	closed  bool
	wg      sync.WaitGroup // flow goroutines
	running atomic.Bool
}

// New builds the flow table and the gVisor stack over opts.Devices.
// Nothing runs until Run.
func New(opts Options) (*Stack, error) {
	if len(opts.Devices) == 0 {
		return nil, errors.New("stack: no devices")
	}
	if opts.Policy == nil {
		return nil, errors.New("stack: Policy is required")
	}
	opts.Config.Defaults()
	opts.Egress.Defaults()
	opts.Fragments.Defaults()
	if err := opts.Config.Validate().Err(); err != nil {
		return nil, err
	}
	if err := opts.Fragments.Validate().Err(); err != nil {
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
	flows := verdict.NewFlows()
	s := &Stack{
		cfg:     opts.Config,
		egress:  opts.Egress,
		mtu:     opts.MTU,
		devs:    opts.Devices,
		ct:      conntrack.New(opts.Conntrack, conntrack.Options{OnDestroy: flows.Forget}),
		frags:   reassembly.New(opts.Fragments, nil),
		log:     log,
		dlog:    decisionlog.New(log, opts.Clock),
		flows:   flows,
		dialTCP: opts.DialTCP,
		dialUDP: opts.DialUDP,
		echo:    opts.Echoer,
		echoSem: make(chan struct{}, maxEchoes),
	}
	s.icmpBudget = decisionlog.NewBucket(opts.Clock)
	s.icmpBudget.Set(icmpErrorsPerSecond, icmpErrorBurst)
	s.apply = verdict.New(verdict.Options{Conntrack: s.ct, Flows: flows, Decisions: s.dlog, Log: log, Now: opts.Clock})
	if s.dialTCP == nil || s.dialUDP == nil {
		d := egress.NewDialer(opts.Egress)
		if s.dialTCP == nil {
			s.dialTCP = d.DialTCP
		}
		if s.dialUDP == nil {
			s.dialUDP = d.DialUDP
		}
	}
	s.upstream = tcpDialer{s}
	s.gate = l7gate.New(s.apply, s.upstream, s.egress.DialTimeout.D())
	s.SetPolicy(opts.Policy)
	if s.echo == nil {
		p, err := egress.NewPinger(opts.Egress, log)
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

// tcpDialer is the Stack's upstream TCP dial, for the forwarder and the
// L7 gate alike, so every failure is counted once.
type tcpDialer struct{ s *Stack }

func (d tcpDialer) DialTCP(ctx context.Context, dst netip.AddrPort) (*net.TCPConn, error) {
	c, err := d.s.dialTCP(ctx, dst)
	if err != nil {
		d.s.ctr.tcpDialFailures.Add(1)
	}
	return c, err
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
	// The flusher and the housekeeping end with ctx, before the teardown.
	go func() { defer helpers.Done(); s.apply.Run(ctx) }()
	go func() { defer helpers.Done(); s.runHousekeeping(ctx) }()
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
	s.wg.Wait()
	s.gs.Wait()
	if s.pinger != nil {
		_ = s.pinger.Close()
	}
	return nil
}

// startFlow registers one flow goroutine; false means the Stack is shutting
// down and the flow must not start. Every true is paired with wg.Done.
func (s *Stack) startFlow() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	return true
}

// SetPolicy makes p decide every flow that starts from now on. Established
// flows keep the verdict cached in conntrack, unless p has [reload]
// existing_flows = "recheck": then each tracked flow is decided again by p
// on its next packet, and ended when p no longer allows it.
func (s *Stack) SetPolicy(p *policy.Policy) {
	s.apply.SetPolicy(p)
	old := s.pol.Swap(p)
	if old != nil && p.RecheckExistingFlows() {
		s.flows.MarkRecheck()
	}
}

// runHousekeeping periodically summarises the decision lines the budget
// suppressed and drops incomplete datagrams past their timeout (Add only
// expires those it touches), until ctx is done. It is owned by Run.
func (s *Stack) runHousekeeping(ctx context.Context) {
	t := time.NewTicker(decisionlog.SummaryEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.dlog.FlushSuppressed()
			return
		case <-t.C:
			s.dlog.FlushSuppressed()
			s.frags.Expire()
		}
	}
}

// Stats returns a snapshot of the counters.
func (s *Stack) Stats() Stats { return s.snapshot() }
