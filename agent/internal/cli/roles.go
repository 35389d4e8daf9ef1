package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/avalanche-fleet/avalanche/agent/internal/config"
	"github.com/avalanche-fleet/avalanche/agent/internal/daemon"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
)

// cloudProgram is the avalanche-cloud binary next to this one; the
// AVALANCHE_CLOUD environment variable overrides it (tests).
func cloudProgram() string {
	if p := os.Getenv("AVALANCHE_CLOUD"); p != "" {
		return p
	}
	exe, err := os.Executable()
	if err != nil {
		return "avalanche-cloud"
	}
	return filepath.Join(filepath.Dir(exe), "avalanche-cloud")
}

// wireExitNode makes every pass (and so every activation) end by running
// `avalanche-cloud exit-node-ensure`, which keeps the host a logged-in,
// advertised, approved Tailscale exit node; the returned function adds
// its report to status (nil when the role is off).
func wireExitNode(d *daemon.Daemon, c *config.Config) func(*status.Status) {
	if !c.ExitNode.Enable {
		return nil
	}
	var mu sync.Mutex
	last := &status.ExitNode{Error: "not checked yet"}
	d.Hooks.AfterPass = func(ctx context.Context) {
		r := ensureExitNode(ctx, c.Path)
		view := &r
		switch {
		case r.Error != "":
			d.Log.Error().Str("phase", "exit-node").Str("error", r.Error).Msg("exit node role")
		case len(r.Repaired) > 0:
			d.Log.Warn().Str("phase", "exit-node").Strs("repaired", r.Repaired).Msg("exit node drift repaired")
		}
		mu.Lock()
		last = view
		mu.Unlock()
	}
	return func(s *status.Status) {
		mu.Lock()
		defer mu.Unlock()
		e := *last
		s.ExitNode = &e
	}
}

// ensureExitNode runs the exit-node role once and returns its report.
func ensureExitNode(ctx context.Context, configPath string) status.ExitNode {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	argv := []string{cloudProgram(), "exit-node-ensure", "--config", configPath}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var r status.ExitNode
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		r.Error = fmt.Sprintf("%v: %v: %s", argv, runErr, elide(stderr.String(), 400))
	}
	return r
}

// superviseHomeIP runs `avalanche-cloud watch-home-ip` for as long as ctx
// lasts, restarting it (after a pause) when it exits.
func superviseHomeIP(ctx context.Context, log zerolog.Logger, c *config.Config) {
	if !c.HomeIP.Enable {
		return
	}
	for ctx.Err() == nil {
		cmd := exec.CommandContext(ctx, cloudProgram(), "watch-home-ip", "--config", c.Path)
		cmd.Stderr = os.Stderr // its journal lines are the agent's
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
		cmd.WaitDelay = 5 * time.Second
		err := cmd.Run()
		if ctx.Err() != nil {
			return
		}
		log.Error().Err(err).Str("phase", "home-ip").Msg("home IP watcher exited; restarting in 30s")
		select {
		case <-ctx.Done():
		case <-time.After(30 * time.Second):
		}
	}
}

// runCloud runs avalanche-cloud with the same arguments and streams.
func runCloud(ctx context.Context, m *Main, args []string) error {
	return delegate(ctx, m, cloudProgram(), args)
}

// delegate runs a helper program installed next to avalanche-agent with
// args and this process's streams; its exit status becomes ours.
func delegate(ctx context.Context, m *Main, program string, args []string) error {
	cmd := exec.CommandContext(ctx, program, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = m.Stdin, m.Stdout, m.Stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return ExitError{Code: exit.ExitCode()}
	}
	if err != nil {
		return fmt.Errorf("running %s (installed next to avalanche-agent): %w", program, err)
	}
	return nil
}
