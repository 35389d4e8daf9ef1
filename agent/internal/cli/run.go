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
	"github.com/avalanche-fleet/avalanche/pkg/release"
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
	d, err := NewDaemon(c, m.Stderr)
	if err != nil {
		return err
	}
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
// parts meet. It fails when a key the builder role needs cannot be read.
func NewDaemon(c *config.Config, logOut io.Writer) (*daemon.Daemon, error) {
	log := logging.New(c.Log.Level, logOut)
	repo := NewRepo(c)
	nix := &rebuild.Nix{ExtraArgs: c.Deploy.NixArgs, Stderr: &logging.LineWriter{Log: log, Field: "build"}}
	d := &daemon.Daemon{
		Config:  c,
		Log:     log,
		Git:     repo,
		Nix:     nix,
		Secrets: newSecretsInstaller(c),
		Notify:  &notify.Notifier{},
		Version: Version,
	}
	src, rel, err := BuilderMode(c, nix, repo)
	if err != nil {
		return nil, err
	}
	if exe, err := os.Executable(); err == nil {
		d.SelfPath = exe
	}
	rep := wireForge(d, c)
	reconfigureGate := wireGate(d, c)
	wireLease(d, c)
	d.SetBuilderMode(src, reportRelease(rel, rep))
	d.OnReload = func(nc *config.Config) {
		reconfigureGate(nc)
		repo := NewRepo(nc)
		src, rel, err := BuilderMode(nc, nix, repo)
		if err != nil {
			d.Log.Error().Err(err).Msg("config changed: keeping the running builder mode")
			return
		}
		d.Git = repo
		d.SetBuilderMode(src, reportRelease(rel, rep))
	}
	extras := []func(*status.Status){wireExitNode(d, c)}
	if rep != nil {
		extras = append(extras, func(s *status.Status) { s.Forge = rep.Status() })
	}
	d.SetStatusExtra(func(s *status.Status) {
		for _, add := range extras {
			if add != nil {
				add(s)
			}
		}
	})
	return d, nil
}

// NewRepo returns the git side of the daemon for c.
func NewRepo(c *config.Config) *gitsync.Repo {
	r := &gitsync.Repo{
		Dir: c.RepoDir(),
		Remote: gitsync.Remote{URL: c.Repository.URL, TokenFile: c.Repository.TokenFile,
			SSHKeyFile: c.Repository.SSHKeyFile, KnownHostsFile: c.Repository.KnownHostsFile},
		Branches: c.TrackedBranches(),
		Timeout:  c.Repository.FetchTimeout.D(),
		Limits: gitsync.Limits{MaxObjectSize: c.Repository.MaxObjectSize, MaxFetchSize: c.Repository.MaxFetchSize,
			MaxObjects: c.Repository.MaxFetchObjects},
	}
	switch {
	case c.CommitsOnly():
		r.Contents = gitsync.CommitsOnly
	case !c.Builder.Enable:
		// Evaluates the heads it fetches, through r.EvalDir. The builder
		// keeps everything: it may release a commit that is no head any
		// more, and writes its releases into the copy.
		r.Contents = gitsync.TipTrees
	}
	if r.Contents != gitsync.Everything {
		r.WholeBranches = []string{release.Branch}
	}
	return r
}

func runFleet(ctx context.Context, m *Main, args []string) error {
	err := fleet.Run(ctx, args, m.Stdout, m.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}
