package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/tungate/tungate/internal/config"
)

// cmdRun runs the gateway in the foreground until SIGINT or SIGTERM.
// SIGHUP reloads the policy from the same file.
func cmdRun(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	path := fs.String("c", "", "config file")
	if err := fs.Parse(args); err != nil {
		return &exitError{2, err}
	}
	if *path == "" {
		return &exitError{2, fmt.Errorf("tungate run: -c FILE is required")}
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return &exitError{1, err}
	}
	log, err := newLogger(os.Stderr, cfg.Compiled.Log().Level)
	if err != nil {
		return &exitError{1, err}
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	gw, err := startGateway(ctx, *path, cfg, log)
	if err != nil {
		return err
	}
	log.Info("ready", "tun", gw.iface.Name(), "queues", len(gw.iface.Queues()),
		"rules", len(cfg.Policy.Rules), "steer", cfg.Routing.Steer, "egress", cfg.Egress.Interface)

	stopped := make(chan struct{})
	go func() {
		gw.wait()
		close(stopped)
	}()
	for {
		select {
		case <-hup:
			_ = gw.applyReload("SIGHUP") // logged there; the running policy stays on error
		case <-ctx.Done():
			log.Info("stopping", "reason", "signal")
			err := gw.close()
			if err != nil {
				log.Error("cleanup incomplete", "err", err.Error())
			}
			log.Info("stopped")
			return err
		case <-stopped:
			err := gw.wait()
			if cerr := gw.close(); cerr != nil {
				log.Error("cleanup incomplete", "err", cerr.Error())
			}
			if err == nil {
				err = fmt.Errorf("data plane stopped unexpectedly")
			}
			return err
		}
	}
}
