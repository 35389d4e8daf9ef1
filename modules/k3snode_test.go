package modules

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// nodeNetwork is what nixos/tests/eval says a host opens and loads.
type nodeNetwork struct {
	ExtraCommands   string   `json:"extraCommands"`
	AllowedTCPPorts []int    `json:"allowedTCPPorts"`
	KernelModules   []string `json:"kernelModules"`
}

// hostNetworkPorts are the ports of pods on the host network
// (kubernetes/): node-exporter and Home Assistant. Every k3s node must let
// the pod network (and the LAN, where pods on other nodes come from,
// masqueraded) reach them; other hosts must not open them
// (TestK3sNodeFirewallPackets).
var hostNetworkPorts = []int{8123, 9100}

// legacyIptables is what marmithon's pod needs loaded on its node: its
// iptables-legacy cannot load modules (no CAP_SYS_MODULE).
var legacyIptables = []string{"tun", "ip_tables", "ip6_tables", "iptable_filter", "ip6table_filter", "xt_owner", "ipt_REJECT", "ip6t_REJECT"}

// TestK3sNodesLoadLegacyIptables: the k3s nodes, and only they, load what
// marmithon's pod needs.
func TestK3sNodesLoadLegacyIptables(t *testing.T) {
	f := newFleet(t)
	for _, tc := range []struct {
		host string
		k3s  bool
	}{{"raccoon00", true}, {"opi01", true}, {"eagle", false}} {
		t.Run(tc.host, func(t *testing.T) {
			var n nodeNetwork
			f.mustEval(t, fmt.Sprintf("nodeNetwork %q", tc.host), &n)
			for _, m := range legacyIptables {
				if got := slices.Contains(n.KernelModules, m); got != tc.k3s {
					t.Errorf("%s: boot.kernelModules has %s = %v; want %v", tc.host, m, got, tc.k3s)
				}
			}
		})
	}
}

// TestK3sServersDrain: the k3s servers drain their node around a switch
// that restarts k3s and around a reboot, with the flake's avalanche-drain
// and the admin kubeconfig k3s writes there; k3s agents (no kubeconfig
// that may evict) and other hosts do not.
func TestK3sServersDrain(t *testing.T) {
	f := newFleet(t)
	type drain struct {
		Enable     bool   `json:"enable"`
		Helper     string `json:"helper"`
		Kubeconfig string `json:"kubeconfig"`
		Node       string `json:"node"`
		Timeout    string `json:"timeout"`
	}
	f.writeSecrets(t, []string{"opi01", "opi03", "raccoon00", "eagle"}) // the hosts evaluate only with their secrets files
	for _, tc := range []struct {
		host  string
		drain bool
	}{{"opi01", true}, {"opi03", true}, {"raccoon00", false}, {"eagle", false}} {
		t.Run(tc.host, func(t *testing.T) {
			var r report
			f.mustEval(t, fmt.Sprintf("report %q", tc.host), &r)
			var c struct {
				Deploy struct {
					Drain drain `json:"drain"`
				} `json:"deploy"`
			}
			if err := json.Unmarshal(r.AgentConfig, &c); err != nil {
				t.Fatal(err)
			}
			d := c.Deploy.Drain
			if d.Enable != tc.drain {
				t.Errorf("%s: deploy.drain.enable = %v; want %v", tc.host, d.Enable, tc.drain)
			}
			if !strings.HasSuffix(d.Helper, "-avalanche-drain/bin/avalanche-drain") {
				t.Errorf("%s: deploy.drain.helper = %q; want the flake's avalanche-drain", tc.host, d.Helper)
			}
			if d.Kubeconfig != "/etc/rancher/k3s/k3s.yaml" || d.Node != tc.host || d.Timeout != "15m" {
				t.Errorf("%s: deploy.drain = %+v; want k3s's kubeconfig, the host name as node, 15m", tc.host, d)
			}
			if err := checkConfig(t, r.AgentConfig); err != nil {
				t.Errorf("%s: the rendered agent config fails check-config: %v", tc.host, err)
			}
		})
	}
}
