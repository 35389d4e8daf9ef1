package hetzner

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/hetznercloud/hcloud-go/v2/hcloud"
)

// TailscalePort is tailscaled's default WireGuard UDP port; opening it lets
// peers reach the exit node directly instead of through DERP.
const TailscalePort = "41641"

// FirewallRules is the exit node's complete inbound rule set: SSH from the
// home's public IP only, and Tailscale's UDP port from anywhere. Outbound
// traffic stays unrestricted (no outbound rules).
func FirewallRules(home netip.Addr) []hcloud.FirewallRule {
	return []hcloud.FirewallRule{
		{
			Direction:   hcloud.FirewallRuleDirectionIn,
			Protocol:    hcloud.FirewallRuleProtocolTCP,
			Port:        hcloud.Ptr("22"),
			SourceIPs:   []net.IPNet{hostNet(home)},
			Description: hcloud.Ptr("ssh from home"),
		},
		{
			Direction:   hcloud.FirewallRuleDirectionIn,
			Protocol:    hcloud.FirewallRuleProtocolUDP,
			Port:        hcloud.Ptr(TailscalePort),
			SourceIPs:   []net.IPNet{mustNet("0.0.0.0/0"), mustNet("::/0")},
			Description: hcloud.Ptr("tailscale"),
		},
	}
}

func hostNet(a netip.Addr) net.IPNet {
	a = a.Unmap()
	return net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(a.BitLen(), a.BitLen())}
}

func mustNet(s string) net.IPNet {
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	return *n
}

// ruleKey renders a rule in a canonical form for comparison and plans.
func ruleKey(r hcloud.FirewallRule) string {
	src := make([]string, 0, len(r.SourceIPs))
	for _, n := range r.SourceIPs {
		src = append(src, n.String())
	}
	slices.Sort(src)
	port := ""
	if r.Port != nil {
		port = " " + *r.Port
	}
	s := fmt.Sprintf("%s %s%s", r.Direction, r.Protocol, port)
	if len(src) > 0 {
		s += " from " + strings.Join(src, ", ")
	}
	return s
}

func rulesKey(rules []hcloud.FirewallRule) []string {
	keys := make([]string, 0, len(rules))
	for _, r := range rules {
		keys = append(keys, ruleKey(r))
	}
	slices.Sort(keys)
	return keys
}

// sameRules reports whether two rule sets admit the same traffic
// (descriptions and order are ignored).
func sameRules(a, b []hcloud.FirewallRule) bool {
	return slices.Equal(rulesKey(a), rulesKey(b))
}

func describeRules(rules []hcloud.FirewallRule) string {
	keys := make([]string, 0, len(rules))
	for _, r := range rules {
		keys = append(keys, ruleKey(r))
	}
	return strings.Join(keys, "; ")
}

// sshSource returns the single source address of the SSH rule, if any.
func sshSource(rules []hcloud.FirewallRule) (netip.Addr, bool) {
	for _, r := range rules {
		if r.Direction == hcloud.FirewallRuleDirectionIn && r.Port != nil && *r.Port == "22" && len(r.SourceIPs) == 1 {
			p, err := netip.ParsePrefix(r.SourceIPs[0].String())
			if err == nil && p.IsSingleIP() {
				return p.Addr(), true
			}
		}
	}
	return netip.Addr{}, false
}
