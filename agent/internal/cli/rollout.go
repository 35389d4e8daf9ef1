package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/config"
	"github.com/avalanche-fleet/avalanche/agent/internal/daemon"
	"github.com/avalanche-fleet/avalanche/agent/internal/rollout"
	"github.com/avalanche-fleet/avalanche/pkg/forge"
)

// forgeClient returns a client for report.forge whose token is read from
// its file at every call, so that a rotated token needs no restart.
func forgeClient(c *config.Config) (func() (*forge.Client, error), error) {
	f := c.Report.Forge
	ep, err := forge.ParseURL(f.URL)
	if err != nil {
		return nil, fmt.Errorf("report.forge.url: %w", err)
	}
	return func() (*forge.Client, error) {
		b, err := os.ReadFile(f.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("reading report.forge.tokenFile: %w: %w", forge.ErrUnauthorized, err)
		}
		return &forge.Client{Endpoint: ep, Repository: f.Repository, Token: strings.TrimSpace(string(b)),
			UserAgent: "avalanche-agent/" + Version}, nil
	}, nil
}

// wireGate sets the rollout gate of a host that reports to the forge: in a
// wave after the first (rollout.wave) it reads the earlier waves' statuses
// there; in wave 0 or without waves it never holds anything. It returns
// the function that applies a reloaded config to the gate.
func wireGate(d *daemon.Daemon, c *config.Config) func(*config.Config) {
	if !c.Report.Forge.Enabled() {
		return func(*config.Config) {}
	}
	client, err := forgeClient(c)
	if err != nil {
		d.Log.Error().Err(err).Msg("rollout gate off")
		return func(*config.Config) {}
	}
	g := &rollout.Gate{Rollout: c.Rollout, Interval: c.PollInterval.D(), Now: time.Now,
		Read: func(ctx context.Context, commit string) ([]forge.CommitStatus, error) {
			cl, err := client()
			if err != nil {
				return nil, err
			}
			ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			return cl.Latest(ctx, commit)
		}}
	d.Gate = g
	// A reloaded config keeps the forge it started with (its URL and
	// token file are read at start, like the reporter's).
	return func(nc *config.Config) { g.Configure(nc.Rollout) }
}

var commitRE = regexp.MustCompile(`^[0-9a-f]{40}$`)

// runRollout is `avalanche-agent rollout pause|resume|skip COMMIT`: it
// sets the status avalanche/rollout on the commit, which every host's gate
// reads, so one command on any host steers the whole fleet.
func runRollout(ctx context.Context, m *Main, args []string) error {
	fs := m.flags("rollout")
	cfgPath := fs.String("config", config.DefaultPath, "config file (report.forge gives the forge and its token)")
	why := fs.String("reason", "", "a few words saying why, shown in the forge and in every host's status")
	usage := "usage: avalanche-agent rollout [--config FILE] [--reason TEXT] pause|resume|skip COMMIT"
	if err := fs.Parse(args); err != nil {
		return ErrUsage
	}
	if fs.NArg() != 2 || !commitRE.MatchString(fs.Arg(1)) {
		fmt.Fprintln(m.Stderr, usage+" (COMMIT: the full 40-character id)")
		return ErrUsage
	}
	s := forge.Status{Context: rollout.ControlContext}
	switch fs.Arg(0) {
	case "pause":
		s.State, s.Description = forge.Pending, rollout.WordPause
	case "resume":
		s.State, s.Description = forge.Success, rollout.WordResume
	case "skip":
		s.State, s.Description = forge.Success, rollout.WordSkip+" the gate"
	default:
		fmt.Fprintln(m.Stderr, usage)
		return ErrUsage
	}
	host, _ := os.Hostname()
	s.Description += " from " + host
	if *why != "" {
		s.Description += ": " + *why
	}
	return postControl(ctx, m, *cfgPath, fs.Arg(1), s)
}

func postControl(ctx context.Context, m *Main, path, commit string, s forge.Status) error {
	c, err := config.Load(path)
	if err != nil {
		return err
	}
	if !c.Report.Forge.Enabled() {
		return fmt.Errorf("%s: report.forge.url is not set: the rollout lives in the forge's commit statuses", path)
	}
	client, err := forgeClient(c)
	if err != nil {
		return err
	}
	cl, err := client()
	if err != nil {
		return err
	}
	if err := cl.CreateStatus(ctx, commit, s); err != nil {
		return fmt.Errorf("setting %s on %s: %w", rollout.ControlContext, shortC(commit), err)
	}
	fmt.Fprintf(m.Stdout, "%s on %s: %s (every host's gate reads it at its next poll)\n", rollout.ControlContext, shortC(commit), s.Description)
	return nil
}

// writeRollout is status's line about the rollout gate.
func writeRollout(w io.Writer, d *rollout.Decision) {
	if d == nil {
		return
	}
	fmt.Fprintf(w, "  rollout\twave %d: gate %s for %s: %s\n", d.Wave, d.Verdict, shortC(d.Commit), oneLine(d.Reason, 300))
}
