package modules

import (
	"fmt"
	"slices"
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
