package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"reflect"
	"sync"

	"github.com/tungate/tungate/conntrack"
	"github.com/tungate/tungate/control"
	"github.com/tungate/tungate/internal/config"
	"github.com/tungate/tungate/stack"
	"github.com/tungate/tungate/tun"
)

// gateway is one running tungate: the device, the steering it installed,
// the flow table and the data plane. start builds it in that order and
// close tears it down in reverse, so nothing is left behind on any path.
type gateway struct {
	log      *slog.Logger
	path     string
	iface    *tun.Interface
	steering *tun.Steering
	table    *conntrack.Table
	data     *stack.Stack
	ctl      *control.Server

	reloadMu sync.Mutex // serializes reloads: SIGHUP and the control socket
	mu       sync.Mutex // guards cfg: the last config that was applied
	cfg      *config.File

	cancel context.CancelFunc
	wg     sync.WaitGroup // the sweeper, the data plane and the control socket
	runErr error          // the data plane's exit error, read after wg.Wait
}

func startGateway(ctx context.Context, path string, cfg *config.File, log *slog.Logger) (g *gateway, err error) {
	g = &gateway{log: log, path: path, cfg: cfg}
	defer func() {
		if err != nil {
			g.close()
			g = nil
		}
	}()

	if ferr := tun.CheckForwarding(false); ferr != nil {
		return g, ferr
	}
	if name := cfg.Egress.Interface; name != "" {
		// Checked before anything is set up: with a missing egress
		// interface every upstream dial would fail, behind a gateway that
		// said it was ready.
		if _, ierr := net.InterfaceByName(name); ierr != nil {
			return g, fmt.Errorf("[egress] interface %q: no such interface in this network namespace", name)
		}
	}
	if ferr := tun.CheckForwarding(true); ferr != nil {
		log.Warn("IPv6 traffic will not reach tungate", "err", ferr.Error())
	}
	g.ctl, err = control.Listen(cfg.Control.Socket, control.Options{Log: log})
	if err != nil {
		return g, err
	}

	g.iface, err = tun.Open(cfg.Tun, log)
	if err != nil {
		return g, fmt.Errorf("open TUN %q: %w", cfg.Tun.Name, err)
	}
	if len(cfg.Routing.Steer) > 0 {
		g.steering, err = tun.InstallSteering(cfg.Routing, g.iface.Name(), log)
		if err != nil {
			return g, fmt.Errorf("install steering: %w", err)
		}
	}

	g.data, err = stack.New(stack.Options{
		Config:    cfg.Stack,
		Egress:    cfg.Egress,
		MTU:       g.iface.MTU(),
		Devices:   g.iface.Queues(),
		Conntrack: cfg.Conntrack,
		Fragments: cfg.Fragments,
		Policy:    cfg.Compiled,
		Log:       log,
	})
	if err != nil {
		return g, fmt.Errorf("start data plane: %w", err)
	}
	g.table = g.data.Conntrack()

	runCtx, cancel := context.WithCancel(ctx)
	g.cancel = cancel
	g.wg.Add(2)
	go func() {
		defer g.wg.Done()
		g.table.Run(runCtx)
	}()
	go func() {
		defer g.wg.Done()
		if rerr := g.data.Run(runCtx); rerr != nil && !errors.Is(rerr, context.Canceled) {
			g.runErr = rerr
			log.Error("data plane stopped", "err", rerr.Error())
		}
		cancel() // the data plane ending ends the gateway
	}()
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		g.serveControl(runCtx)
	}()
	return g, nil
}

// done is closed when the data plane has stopped.
func (g *gateway) wait() error {
	g.wg.Wait()
	return g.runErr
}

// applyReload is the one reload path, for SIGHUP and the control socket
// alike: one reload at a time, logged the same way whoever asked.
func (g *gateway) applyReload(via string) error {
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	if err := g.reload(); err != nil {
		g.log.Error("reload refused, the running policy stays", "err", err.Error(), "via", via)
		return err
	}
	g.log.Info("reloaded", "config", g.path, "via", via)
	return nil
}

// reload re-reads the config file. A bad file is refused with its
// FILE:LINE:COL errors and the running policy stays. Only the policy is
// swapped: new flows follow it, established flows keep their verdict.
func (g *gateway) reload() error {
	cfg, err := config.Load(g.path)
	if err != nil {
		return err
	}
	g.mu.Lock()
	old := g.cfg
	g.cfg = cfg
	g.mu.Unlock()

	cfg.Compiled.CarryCountersFrom(old.Compiled)
	g.data.SetPolicy(cfg.Compiled)
	for _, s := range restartOnlySections(old, cfg) {
		g.log.Warn("config section changed but only takes effect after a restart", "section", s)
	}
	return nil
}

// restartOnlySections names the sections whose change a reload cannot apply.
func restartOnlySections(old, cur *config.File) []string {
	var changed []string
	for _, s := range []struct {
		name     string
		old, cur any
	}{
		{"tun", old.Tun, cur.Tun},
		{"routing", old.Routing, cur.Routing},
		{"egress", old.Egress, cur.Egress},
		{"stack", old.Stack, cur.Stack},
		{"conntrack", old.Conntrack, cur.Conntrack},
		{"fragments", old.Fragments, cur.Fragments},
		{"control", old.Control, cur.Control},
	} {
		if !reflect.DeepEqual(s.old, s.cur) {
			changed = append(changed, s.name)
		}
	}
	return changed
}

// close stops the data plane and removes what start installed, in reverse,
// except the steering, which stays to refuse steered traffic until tungate
// runs again (tungate cleanup removes it).
func (g *gateway) close() error {
	if g.cancel != nil {
		g.cancel()
		g.wg.Wait()
	}
	var errs []error
	if g.ctl != nil {
		errs = append(errs, g.ctl.Close())
	}
	// The steering stays, pointing at the unreachable default once the
	// TUN is gone: a stopped gateway forwards nothing unfiltered.
	g.steering.Leave()
	if g.iface != nil {
		errs = append(errs, g.iface.Close())
	}
	return errors.Join(errs...)
}
