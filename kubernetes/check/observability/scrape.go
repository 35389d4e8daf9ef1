package observability

import (
	"fmt"
	"strings"

	"github.com/avalanche-fleet/avalanche/kubernetes/check"
)

// Job is the job label of every agent target.
const Job = "avalanche-agent"

// ExitNodeIPPlaceholder stands for the exit node's tailnet address in a
// generated target; the observability kustomization replaces it with the
// site value exit-node-ip.
const ExitNodeIPPlaceholder = "EXIT-NODE-IP"

// ScrapeConfig is the prometheus-operator object (monitoring.coreos.com/v1alpha1).
type ScrapeConfig struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Metadata   Metadata `json:"metadata"`
	Spec       struct {
		ScrapeInterval string         `json:"scrapeInterval"`
		ScrapeTimeout  string         `json:"scrapeTimeout"`
		MetricsPath    string         `json:"metricsPath"`
		StaticConfigs  []StaticConfig `json:"staticConfigs"`
	} `json:"spec"`
}

// Metadata is an object's name and labels.
type Metadata struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
}

// StaticConfig is one target group: one host.
type StaticConfig struct {
	Labels  map[string]string `json:"labels"`
	Targets []string          `json:"targets"`
}

// Target is how Prometheus reaches one host's agent.
type Target struct {
	Host    Host
	Address string
	// Network is lan (a .internal name the zone resolves) or tailnet.
	Network string
}

// Targets decides each host's address: <name>.internal on the home LAN
// when the .internal zone has an address for it, else, for the exit node
// (the VPS, not at home), its tailnet address from the site values. A host
// that is neither is an error naming what to add.
func Targets(f Fleet, z check.Zone) ([]Target, error) {
	var out []Target
	var errs []string
	for _, h := range f.Hosts {
		switch {
		case len(z.Resolve(h.Name+".internal")) > 0:
			out = append(out, Target{Host: h, Address: h.Name + ".internal:" + f.MetricsPort, Network: "lan"})
		case h.HasRole("exit-node"):
			out = append(out, Target{Host: h, Address: ExitNodeIPPlaceholder + ":" + f.MetricsPort, Network: "tailnet"})
		default:
			errs = append(errs, fmt.Sprintf("%s: no address in the .internal zone (nixos/hosts/mysecrets/internal.zone) and not the exit node", h.Name))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("scrape targets: %s", strings.Join(errs, "; "))
	}
	return out, nil
}

// ScrapeConfigs are the objects for targets: one for the hosts on the LAN
// and one per host reached over the tailnet (its address is filled in by
// a kustomize replacement, which needs a fixed field path).
func ScrapeConfigs(targets []Target) []ScrapeConfig {
	lan := newScrapeConfig("avalanche-agents")
	var out []ScrapeConfig
	for _, t := range targets {
		sc := StaticConfig{Labels: targetLabels(t), Targets: []string{t.Address}}
		if t.Network == "lan" {
			lan.Spec.StaticConfigs = append(lan.Spec.StaticConfigs, sc)
			continue
		}
		one := newScrapeConfig("avalanche-agent-" + t.Host.Name)
		one.Spec.StaticConfigs = []StaticConfig{sc}
		out = append(out, one)
	}
	return append([]ScrapeConfig{lan}, out...)
}

func newScrapeConfig(name string) ScrapeConfig {
	sc := ScrapeConfig{APIVersion: "monitoring.coreos.com/v1alpha1", Kind: "ScrapeConfig",
		Metadata: Metadata{Name: name, Labels: map[string]string{"app.kubernetes.io/part-of": "avalanche"}}}
	sc.Spec.ScrapeInterval, sc.Spec.ScrapeTimeout, sc.Spec.MetricsPath = "60s", "10s", "/metrics"
	return sc
}

// targetLabels are the labels every series of a host carries: host, role
// (its roles, comma-separated, in inventory order), arch (the Nix system),
// hardware and the network it is reached over. job is set here too, so
// that it does not default to the ScrapeConfig's name.
func targetLabels(t Target) map[string]string {
	return map[string]string{"job": Job, "host": t.Host.Name, "role": strings.Join(t.Host.Roles, ","),
		"arch": t.Host.System, "hardware": t.Host.Hardware, "network": t.Network}
}
