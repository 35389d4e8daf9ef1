package cloudcmd

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"tailscale.com/client/local"

	"github.com/avalanche-fleet/avalanche/agent/internal/config"
	"github.com/avalanche-fleet/avalanche/agent/internal/logging"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
	"github.com/avalanche-fleet/avalanche/pkg/exitnode"
	"github.com/avalanche-fleet/avalanche/pkg/hetzner"
	"github.com/avalanche-fleet/avalanche/pkg/homeip"
)

// loadConfig parses --config for the role commands.
func (c *command) loadConfig(name string, args []string) (*config.Config, error) {
	fs := flag.NewFlagSet("cloud "+name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	path := fs.String("config", config.DefaultPath, "agent config `file`")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %v", ErrUsage, err)
	}
	return config.Load(*path)
}

// exitNodeEnsure makes tailscaled a logged-in, advertised (and, with an API
// key, approved) exit node, repairing drift, and prints a status.ExitNode:
// the daemon runs it after every pass on the exit node and shows it.
func (c *command) exitNodeEnsure(ctx context.Context, args []string) error {
	cfg, err := c.loadConfig("exit-node-ensure", args)
	if err != nil {
		return err
	}
	mgr := &exitnode.Manager{
		Local:  &local.Client{Socket: cfg.ExitNode.Socket, UseSocketOnly: true},
		Config: exitnode.Config{AuthKeyFile: cfg.ExitNode.AuthKeyFile, APIKeyFile: cfg.ExitNode.APIKeyFile, Tailnet: cfg.ExitNode.Tailnet},
	}
	st, err := mgr.Ensure(ctx)
	r := status.ExitNode{Advertised: st.Advertised, Approved: st.Approved, Online: st.Online, Repaired: st.Repaired}
	if err != nil {
		r.Error = err.Error()
	}
	if encErr := json.NewEncoder(c.stdout).Encode(r); encErr != nil {
		return encErr
	}
	return err
}

// watchHomeIP keeps the exit node's firewall open to the home's public IP
// only: it reads the IP every homeIP.interval and rewrites the firewall's
// rules when two readings agree on a new address. It runs until ctx ends.
func (c *command) watchHomeIP(ctx context.Context, args []string) error {
	cfg, err := c.loadConfig("watch-home-ip", args)
	if err != nil {
		return err
	}
	log := logging.New(cfg.Log.Level, c.stderr)
	var src homeip.Source = homeip.Tailscale{Local: &local.Client{Socket: cfg.ExitNode.Socket, UseSocketOnly: true}}
	if cfg.HomeIP.WANInterface != "" {
		src = homeip.Interface{Name: cfg.HomeIP.WANInterface}
	}
	w := &homeip.Watcher{}
	t := time.NewTicker(cfg.HomeIP.Interval.D())
	defer t.Stop()
	for {
		token, err := os.ReadFile(cfg.HomeIP.TokenFile)
		if err != nil {
			log.Error().Err(err).Str("phase", "home-ip").Msg("reading the Hetzner token")
		} else {
			w.Firewall = hetzner.HomeIPFirewall{Client: hetzner.NewClient(strings.TrimSpace(string(token)),
				hetzner.Options{Endpoint: c.getenv("HCLOUD_ENDPOINT")}), Name: cfg.HomeIP.Firewall}
			changed, err := w.Poll(ctx, src)
			switch {
			case err != nil:
				log.Warn().Err(err).Str("phase", "home-ip").Msg("home IP")
			case changed:
				log.Info().Str("phase", "home-ip").Str("firewall", cfg.HomeIP.Firewall).Msg("firewall rules now allow the new home IP")
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
