package hetzner

import (
	"context"
	"net/netip"
)

// HomeIPFirewall adapts Client to homeip.Firewall for the named firewall.
type HomeIPFirewall struct {
	Client *Client
	Name   string // "" means DefaultName
}

// SetHomeIP replaces the firewall's rule set when its SSH source differs
// from ip; it reports whether it did.
func (f HomeIPFirewall) SetHomeIP(ctx context.Context, ip netip.Addr) (bool, error) {
	p, err := f.Client.PlanFirewallRules(ctx, f.Name, ip)
	if err != nil {
		return false, err
	}
	if p.Empty() {
		return false, nil
	}
	return true, f.Client.Apply(ctx, p)
}
