package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/tungate/tungate/internal/demo"
)

// cmdDemo builds a throw-away namespace lab, runs this binary as the gateway
// on configs/demo.toml, drives sample traffic and prints what happened.
func cmdDemo(ctx context.Context, args []string) error {
	if len(args) > 0 {
		return &exitError{2, fmt.Errorf("tungate demo takes no arguments")}
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("tungate demo needs root (network namespaces and a TUN device): run it as root, or with sudo")
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return demo.Run(ctx, demo.Options{Binary: self, Out: os.Stdout, Log: log})
}
