package modules

import (
	"fmt"
	"regexp"
	"slices"
	"testing"
)

// nodeNetwork is what nixos/tests/eval says a host opens and loads.
type nodeNetwork struct {
	ExtraCommands string   `json:"extraCommands"`
	KernelModules []string `json:"kernelModules"`
}

// hostNetworkPorts are the ports of pods on the host network
// (kubernetes/): node-exporter and Home Assistant. Every k3s node must let
// the pod network (and the LAN, where pods on other nodes come from,
// masqueraded) reach them; other hosts must not open them.
var hostNetworkPorts = []int{8123, 9100}

// legacyIptables is what marmithon's pod needs loaded on its node: its
// iptables-legacy cannot load modules (no CAP_SYS_MODULE).
var legacyIptables = []string{"tun", "ip_tables", "ip6_tables", "iptable_filter", "ip6table_filter", "xt_owner", "ipt_REJECT", "ip6t_REJECT"}

func TestK3sNodesServeHostNetworkPods(t *testing.T) {
	f := newFleet(t)
	for _, tc := range []struct {
		host string
		k3s  bool
	}{{"raccoon00", true}, {"opi01", true}, {"eagle", false}} {
		t.Run(tc.host, func(t *testing.T) {
			var n nodeNetwork
			f.mustEval(t, fmt.Sprintf("nodeNetwork %q", tc.host), &n)
			for _, port := range hostNetworkPorts {
				for _, src := range []string{"10.42.0.0/16", "10.0.0.0/24"} {
					rule := regexp.MustCompile(fmt.Sprintf(`(?m)^\s*iptables -A nixos-fw -p tcp --dport %d -s %s -j nixos-fw-accept$`, port, regexp.QuoteMeta(src)))
					if got := rule.MatchString(n.ExtraCommands); got != tc.k3s {
						t.Errorf("%s: TCP %d accepted from %s = %v; want %v. extraCommands:\n%s", tc.host, port, src, got, tc.k3s, n.ExtraCommands)
					}
				}
			}
			for _, m := range legacyIptables {
				if got := slices.Contains(n.KernelModules, m); got != tc.k3s {
					t.Errorf("%s: boot.kernelModules has %s = %v; want %v", tc.host, m, got, tc.k3s)
				}
			}
		})
	}
}
