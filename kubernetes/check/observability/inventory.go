// Package observability generates what the cluster needs to watch the
// fleet's agents, from the repository itself: kube-prometheus-stack scrape
// targets for every host of the inventory (ScrapeConfig), the alert rules
// (PrometheusRule) and the fleet dashboard (Grafana JSON, built with
// Grafana's foundation SDK). `go run ./cmd/observability` writes them into
// kubernetes/base/infra/observability; the tests check that the committed
// files are what the sources give, that every expression parses with
// Prometheus' own parser, and that it names only metrics a real agent
// exports (agent-metrics.txt, which an agent test keeps true).
package observability

import (
	"context"
	"fmt"
	"net"
	"sort"

	"github.com/avalanche-fleet/avalanche/kubernetes/check"
)

// Host is one machine of nixos/lib/inventory.nix.
type Host struct {
	Name     string   `json:"name"`
	System   string   `json:"system"`
	Hardware string   `json:"hardware"`
	Roles    []string `json:"roles"`
}

// Fleet is what the NixOS side says about the agents to scrape.
type Fleet struct {
	Hosts []Host
	// MetricsPort is the port of every agent's metrics listener
	// (services.avalanche-agent.metricsListen in nixos/profiles/global.nix).
	MetricsPort string
}

const fleetExpr = `{ root }: let
  inv = import (root + "/nixos/lib/inventory.nix");
  global = import (root + "/nixos/profiles/global.nix") {
    lib = { mkDefault = x: x; }; pkgs = { }; host = { };
  };
in {
  hosts = builtins.attrValues (builtins.mapAttrs (name: h: {
    inherit name; inherit (h) system hardware roles;
  }) inv);
  metricsListen = global.services.avalanche-agent.metricsListen or null;
}`

// ReadFleet evaluates the inventory and the global profile of repoRoot
// with nix-instantiate (no nixpkgs needed). Hosts come sorted by name.
func ReadFleet(ctx context.Context, repoRoot string) (Fleet, error) {
	var raw struct {
		Hosts         []Host  `json:"hosts"`
		MetricsListen *string `json:"metricsListen"`
	}
	if err := check.EvalNix(ctx, repoRoot, fleetExpr, "inventory, global profile", &raw); err != nil {
		return Fleet{}, err
	}
	if raw.MetricsListen == nil {
		return Fleet{}, fmt.Errorf("nixos/profiles/global.nix sets no services.avalanche-agent.metricsListen: the agents serve no metrics to scrape")
	}
	_, port, err := net.SplitHostPort(*raw.MetricsListen)
	if err != nil || port == "" {
		return Fleet{}, fmt.Errorf("nixos/profiles/global.nix: metricsListen %q is not host:port", *raw.MetricsListen)
	}
	sort.Slice(raw.Hosts, func(i, j int) bool { return raw.Hosts[i].Name < raw.Hosts[j].Name })
	return Fleet{Hosts: raw.Hosts, MetricsPort: port}, nil
}

// HasRole reports whether h has role r.
func (h Host) HasRole(r string) bool {
	for _, x := range h.Roles {
		if x == r {
			return true
		}
	}
	return false
}
