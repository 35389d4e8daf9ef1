package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"tailscale.com/client/local"

	"github.com/avalanche-fleet/avalanche/agent/internal/cloudcmd"
	"github.com/avalanche-fleet/avalanche/agent/internal/config"
	"github.com/avalanche-fleet/avalanche/agent/internal/daemon"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
	"github.com/avalanche-fleet/avalanche/pkg/exitnode"
	"github.com/avalanche-fleet/avalanche/pkg/hetzner"
	"github.com/avalanche-fleet/avalanche/pkg/homeip"
)

// wireExitNode makes every pass (and so every activation) end by ensuring
// the host is a logged-in, advertised, approved Tailscale exit node.
func wireExitNode(d *daemon.Daemon, c *config.Config) {
	if !c.ExitNode.Enable {
		return
	}
	mgr := &exitnode.Manager{
		Local:  &local.Client{Socket: c.ExitNode.Socket, UseSocketOnly: true},
		Config: exitnode.Config{AuthKeyFile: c.ExitNode.AuthKeyFile, APIKeyFile: c.ExitNode.APIKeyFile, Tailnet: c.ExitNode.Tailnet},
	}
	var mu sync.Mutex
	last := &status.ExitNode{}
	d.Hooks.AfterPass = func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
		st, err := mgr.Ensure(ctx)
		view := &status.ExitNode{Advertised: st.Advertised, Approved: st.Approved, Online: st.Online}
		switch {
		case err != nil:
			view.Error = err.Error()
			d.Log.Error().Err(err).Str("phase", "exit-node").Msg("exit node role")
		case len(st.Repaired) > 0:
			d.Log.Warn().Str("phase", "exit-node").Strs("repaired", st.Repaired).Msg("exit node drift repaired")
		}
		mu.Lock()
		last = view
		mu.Unlock()
	}
	d.SetStatusExtra(func(s *status.Status) {
		mu.Lock()
		defer mu.Unlock()
		e := *last
		s.ExitNode = &e
	})
}

// runHomeIP keeps the VPS firewall open to the home's public IP only,
// polling every homeIP.interval until ctx ends.
func runHomeIP(ctx context.Context, d *daemon.Daemon, c *config.Config) {
	if !c.HomeIP.Enable {
		return
	}
	var src homeip.Source = homeip.Tailscale{Local: &local.Client{Socket: c.ExitNode.Socket, UseSocketOnly: true}}
	if c.HomeIP.WANInterface != "" {
		src = homeip.Interface{Name: c.HomeIP.WANInterface}
	}
	w := &homeip.Watcher{}
	t := time.NewTicker(c.HomeIP.Interval.D())
	defer t.Stop()
	for {
		token, err := os.ReadFile(c.HomeIP.TokenFile)
		if err != nil {
			d.Log.Error().Err(err).Str("phase", "home-ip").Msg("reading the Hetzner token")
		} else {
			w.Firewall = hetzner.HomeIPFirewall{Client: hetzner.NewClient(strings.TrimSpace(string(token)), hetzner.Options{}), Name: c.HomeIP.Firewall}
			changed, err := w.Poll(ctx, src)
			switch {
			case err != nil:
				d.Log.Warn().Err(err).Str("phase", "home-ip").Msg("home IP")
			case changed:
				d.Log.Info().Str("phase", "home-ip").Str("firewall", c.HomeIP.Firewall).Msg("firewall rules now allow the new home IP")
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func runCloud(ctx context.Context, m *Main, args []string) error {
	err := cloudcmd.Run(ctx, args, m.Stdout, m.Stderr, m.Getenv)
	if errors.Is(err, cloudcmd.ErrUsage) {
		fmt.Fprintln(m.Stderr, err)
		return ErrUsage
	}
	return err
}
