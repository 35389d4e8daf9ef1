package cli

import (
	"context"
	"errors"
	"flag"
	"io"
	"os"

	"github.com/avalanche-fleet/avalanche/agent/internal/config"
	"github.com/avalanche-fleet/avalanche/agent/internal/daemon"
	"github.com/avalanche-fleet/avalanche/agent/internal/fleet"
	"github.com/avalanche-fleet/avalanche/agent/internal/logging"
	"github.com/avalanche-fleet/avalanche/agent/internal/notify"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
	"github.com/avalanche-fleet/avalanche/pkg/gitsync"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild"
)

func runDaemon(ctx context.Context, m *Main, args []string) error {
	fs := m.flags("run")
	path := fs.String("config", config.DefaultPath, "agent config `file`")
	if err := parse(fs, args); err != nil {
		return err
	}
	c, err := config.Load(*path)
	if err != nil {
		return err
	}
	d := NewDaemon(c, m.Stderr)
	muxes, err := networkServers(d)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := serveNetwork(ctx, muxes); err != nil {
		return err
	}
	go superviseHomeIP(ctx, d.Log, c)
	err = d.Run(ctx)
	if errors.Is(err, daemon.ErrRestart) {
		return nil // systemd's Restart=always starts the new agent
	}
	return err
}

// NewDaemon wires a daemon from a loaded config: the one place where the
// parts meet.
func NewDaemon(c *config.Config, logOut io.Writer) *daemon.Daemon {
	log := logging.New(c.Log.Level, logOut)
	d := &daemon.Daemon{
		Config:  c,
		Log:     log,
		Git:     NewRepo(c),
		Nix:     &rebuild.Nix{ExtraArgs: c.Deploy.NixArgs, Stderr: &logging.LineWriter{Log: log, Field: "build"}},
		Secrets: newSecretsInstaller(c),
		Notify:  &notify.Notifier{},
		Version: Version,
	}
	if exe, err := os.Executable(); err == nil {
		d.SelfPath = exe
	}
	d.OnReload = func(nc *config.Config) { d.Git = NewRepo(nc) }
	extras := []func(*status.Status){wireExitNode(d, c)}
	if r := wireForge(d, c); r != nil {
		extras = append(extras, func(s *status.Status) { s.Forge = r.Status() })
	}
	d.SetStatusExtra(func(s *status.Status) {
		for _, add := range extras {
			if add != nil {
				add(s)
			}
		}
	})
	return d
}

// NewRepo returns the git side of the daemon for c.
func NewRepo(c *config.Config) *gitsync.Repo {
	branches := []string{c.Repository.Branch, c.Repository.TestingBranch}
	return &gitsync.Repo{
		Dir: c.RepoDir(),
		Remote: gitsync.Remote{URL: c.Repository.URL, TokenFile: c.Repository.TokenFile,
			SSHKeyFile: c.Repository.SSHKeyFile, KnownHostsFile: c.Repository.KnownHostsFile},
		Branches: branches,
		Timeout:  c.Repository.FetchTimeout.D(),
	}
}

func runFleet(ctx context.Context, m *Main, args []string) error {
	err := fleet.Run(ctx, args, m.Stdout, m.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}
