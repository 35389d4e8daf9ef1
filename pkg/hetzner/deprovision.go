package hetzner

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
)

// PlanDeprovision computes the calls that delete the server, then its
// firewall (which can only go once nothing uses it), then the SSH key.
func (c *Client) PlanDeprovision(ctx context.Context, name string) (Plan, error) {
	if name == "" {
		name = DefaultName
	}
	p := Plan{Title: fmt.Sprintf("deprovision exit node %q", name), st: &state{}}
	srv, _, err := c.api.Server.GetByName(ctx, name)
	if err != nil {
		return p, fmt.Errorf("looking up server %q: %w", name, err)
	}
	fw, _, err := c.api.Firewall.GetByName(ctx, name)
	if err != nil {
		return p, fmt.Errorf("looking up firewall %q: %w", name, err)
	}
	key, _, err := c.api.SSHKey.GetByName(ctx, name)
	if err != nil {
		return p, fmt.Errorf("looking up ssh key %q: %w", name, err)
	}
	if srv != nil {
		if !managed(srv.Labels) {
			return p, notManaged("server", name)
		}
		p.Steps = append(p.Steps, Step{Method: "DELETE", Path: fmt.Sprintf("/servers/%d", srv.ID),
			Summary: fmt.Sprintf("delete server %q (%s)", name, srv.PublicNet.IPv4.IP),
			run: func(ctx context.Context, c *Client, _ *state) error {
				res, _, err := c.api.Server.DeleteWithResult(ctx, srv)
				if err != nil {
					return err
				}
				return c.wait(ctx, res.Action)
			}})
	}
	if fw != nil {
		if !managed(fw.Labels) {
			return p, notManaged("firewall", name)
		}
		p.Steps = append(p.Steps, Step{Method: "DELETE", Path: fmt.Sprintf("/firewalls/%d", fw.ID),
			Summary: fmt.Sprintf("delete firewall %q", name),
			run: func(ctx context.Context, c *Client, _ *state) error {
				_, err := c.api.Firewall.Delete(ctx, fw)
				return err
			}})
	}
	if key != nil {
		if !managed(key.Labels) {
			return p, notManaged("ssh key", name)
		}
		p.Steps = append(p.Steps, Step{Method: "DELETE", Path: fmt.Sprintf("/ssh_keys/%d", key.ID),
			Summary: fmt.Sprintf("delete ssh key %q", name),
			run: func(ctx context.Context, c *Client, _ *state) error {
				_, err := c.api.SSHKey.Delete(ctx, key)
				return err
			}})
	}
	return p, nil
}

// Status is what exists in the cloud for one exit node.
type Status struct {
	Name           string
	Server         bool
	ServerStatus   string // e.g. "running"
	ServerType     string
	Location       string
	IPv4           string
	IPv6           string
	Firewall       bool
	FirewallOnNode bool       // the firewall is applied to the server
	HomeIP         netip.Addr // the SSH rule's source, if it has exactly one
	Rules          string     // the firewall's rules, rendered
	SSHKey         bool
}

// Status reads the exit node's resources.
func (c *Client) Status(ctx context.Context, name string) (Status, error) {
	if name == "" {
		name = DefaultName
	}
	s := Status{Name: name}
	srv, _, err := c.api.Server.GetByName(ctx, name)
	if err != nil {
		return s, fmt.Errorf("looking up server %q: %w", name, err)
	}
	fw, _, err := c.api.Firewall.GetByName(ctx, name)
	if err != nil {
		return s, fmt.Errorf("looking up firewall %q: %w", name, err)
	}
	key, _, err := c.api.SSHKey.GetByName(ctx, name)
	if err != nil {
		return s, fmt.Errorf("looking up ssh key %q: %w", name, err)
	}
	s.SSHKey = key != nil
	if srv != nil {
		s.Server, s.ServerStatus = true, string(srv.Status)
		s.IPv4, s.IPv6 = srv.PublicNet.IPv4.IP.String(), srv.PublicNet.IPv6.Network.String()
		if srv.ServerType != nil {
			s.ServerType = srv.ServerType.Name
		}
		if srv.Location != nil {
			s.Location = srv.Location.Name
		}
	}
	if fw != nil {
		s.Firewall, s.Rules = true, describeRules(fw.Rules)
		s.HomeIP, _ = sshSource(fw.Rules)
		for _, r := range fw.AppliedTo {
			s.FirewallOnNode = s.FirewallOnNode || (srv != nil && r.Server != nil && r.Server.ID == srv.ID)
		}
	}
	return s, nil
}

// String renders the status for people.
func (s Status) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "exit node %q\n", s.Name)
	if s.Server {
		fmt.Fprintf(&b, "  server:   %s, %s in %s, %s / %s\n", s.ServerStatus, s.ServerType, s.Location, s.IPv4, s.IPv6)
	} else {
		fmt.Fprintf(&b, "  server:   absent\n")
	}
	if s.Firewall {
		fmt.Fprintf(&b, "  firewall: applied=%t, ssh from %s; rules: %s\n", s.FirewallOnNode, addrOrNone(s.HomeIP), s.Rules)
	} else {
		fmt.Fprintf(&b, "  firewall: absent\n")
	}
	fmt.Fprintf(&b, "  ssh key:  %s\n", map[bool]string{true: "present", false: "absent"}[s.SSHKey])
	return b.String()
}

func addrOrNone(a netip.Addr) string {
	if !a.IsValid() {
		return "nobody"
	}
	return a.String()
}
