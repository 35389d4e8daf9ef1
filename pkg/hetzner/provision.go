package hetzner

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/avalanche-fleet/avalanche/pkg/homeip"
	"github.com/hetznercloud/hcloud-go/v2/hcloud"
)

// Defaults for Spec fields left empty.
const (
	DefaultName       = "avalanche-exit-node"
	DefaultServerType = "cpx11"
	DefaultLocation   = "nbg1"
	DefaultImage      = "debian-12" // replaced in place by nixos-infect from the user data
)

// Spec describes the exit node. Name names the server, its firewall and
// its SSH key alike.
type Spec struct {
	Name         string
	ServerType   string
	Location     string
	Image        string
	SSHPublicKey string     // one authorized_keys line
	HomeIP       netip.Addr // the only source allowed to reach SSH
	UserData     string     // cloud-init user data for the first boot
}

func (s Spec) withDefaults() Spec {
	if s.Name == "" {
		s.Name = DefaultName
	}
	if s.ServerType == "" {
		s.ServerType = DefaultServerType
	}
	if s.Location == "" {
		s.Location = DefaultLocation
	}
	if s.Image == "" {
		s.Image = DefaultImage
	}
	return s
}

func (s Spec) validate() error {
	var errs []error
	if f := strings.Fields(s.SSHPublicKey); len(f) < 2 || !strings.HasPrefix(f[0], "ssh-") && !strings.HasPrefix(f[0], "ecdsa-") {
		errs = append(errs, errors.New("ssh public key is missing or not an authorized_keys line"))
	}
	if err := homeip.Check(s.HomeIP); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// PlanProvision computes the calls that make the cloud match spec. It
// only reads from the API.
func (c *Client) PlanProvision(ctx context.Context, spec Spec) (Plan, error) {
	spec = spec.withDefaults()
	p := Plan{Title: fmt.Sprintf("provision exit node %q", spec.Name), st: &state{}}
	if err := spec.validate(); err != nil {
		return p, err
	}
	if err := c.planSSHKey(ctx, &p, spec); err != nil {
		return p, err
	}
	if err := c.planFirewall(ctx, &p, spec.Name, spec.HomeIP, true); err != nil {
		return p, err
	}
	if err := c.planServer(ctx, &p, spec); err != nil {
		return p, err
	}
	return p, nil
}

func (c *Client) planSSHKey(ctx context.Context, p *Plan, spec Spec) error {
	key, _, err := c.api.SSHKey.GetByName(ctx, spec.Name)
	if err != nil {
		return fmt.Errorf("looking up ssh key %q: %w", spec.Name, err)
	}
	if key != nil {
		if !managed(key.Labels) {
			return notManaged("ssh key", spec.Name)
		}
		if keyBody(key.PublicKey) != keyBody(spec.SSHPublicKey) {
			return fmt.Errorf("ssh key %q holds a different public key; deprovision first or pick another name", spec.Name)
		}
		p.st.key = key
		return nil
	}
	p.Steps = append(p.Steps, Step{
		Method: "POST", Path: "/ssh_keys",
		Summary: fmt.Sprintf("create ssh key %q (%s)", spec.Name, keyType(spec.SSHPublicKey)),
		run: func(ctx context.Context, c *Client, st *state) error {
			k, _, err := c.api.SSHKey.Create(ctx, hcloud.SSHKeyCreateOpts{Name: spec.Name, PublicKey: spec.SSHPublicKey, Labels: labels()})
			st.key = k
			return err
		},
	})
	return nil
}

func keyBody(line string) string {
	if f := strings.Fields(line); len(f) >= 2 {
		return f[0] + " " + f[1]
	}
	return line
}

func keyType(line string) string {
	if f := strings.Fields(line); len(f) > 0 {
		return f[0]
	}
	return "?"
}

// planFirewall creates the firewall (when create is set) or replaces its
// rules when they differ from FirewallRules(home).
func (c *Client) planFirewall(ctx context.Context, p *Plan, name string, home netip.Addr, create bool) error {
	fw, _, err := c.api.Firewall.GetByName(ctx, name)
	if err != nil {
		return fmt.Errorf("looking up firewall %q: %w", name, err)
	}
	want := FirewallRules(home)
	switch {
	case fw == nil && !create:
		return fmt.Errorf("firewall %q does not exist; provision the exit node first", name)
	case fw == nil:
		p.Steps = append(p.Steps, Step{
			Method: "POST", Path: "/firewalls",
			Summary: fmt.Sprintf("create firewall %q: %s", name, describeRules(want)),
			run: func(ctx context.Context, c *Client, st *state) error {
				res, _, err := c.api.Firewall.Create(ctx, hcloud.FirewallCreateOpts{Name: name, Labels: labels(), Rules: want})
				if err != nil {
					return err
				}
				st.firewall = res.Firewall
				return c.wait(ctx, res.Actions...)
			},
		})
		return nil
	case !managed(fw.Labels):
		return notManaged("firewall", name)
	}
	p.st.firewall = fw
	if sameRules(fw.Rules, want) {
		return nil
	}
	p.Steps = append(p.Steps, Step{
		Method: "POST", Path: fmt.Sprintf("/firewalls/%d/actions/set_rules", fw.ID),
		Summary: fmt.Sprintf("replace all rules of %q: %s (was: %s)", name, describeRules(want), describeRules(fw.Rules)),
		run: func(ctx context.Context, c *Client, st *state) error {
			actions, _, err := c.api.Firewall.SetRules(ctx, st.firewall, hcloud.FirewallSetRulesOpts{Rules: want})
			if err != nil {
				return err
			}
			return c.wait(ctx, actions...)
		},
	})
	return nil
}

// PlanFirewallRules computes the call that points the SSH rule of the
// existing firewall at home. The firewall's whole rule set is replaced in
// one call, so a failure leaves the previous rules in place.
func (c *Client) PlanFirewallRules(ctx context.Context, name string, home netip.Addr) (Plan, error) {
	if name == "" {
		name = DefaultName
	}
	p := Plan{Title: fmt.Sprintf("point firewall %q at home IP %s", name, home), st: &state{}}
	if err := homeip.Check(home); err != nil {
		return p, err
	}
	return p, c.planFirewall(ctx, &p, name, home, false)
}

func (c *Client) planServer(ctx context.Context, p *Plan, spec Spec) error {
	srv, _, err := c.api.Server.GetByName(ctx, spec.Name)
	if err != nil {
		return fmt.Errorf("looking up server %q: %w", spec.Name, err)
	}
	if srv != nil {
		if !managed(srv.Labels) {
			return notManaged("server", spec.Name)
		}
		p.st.server = srv
		if fw := p.st.firewall; fw == nil || !slices.ContainsFunc(srv.PublicNet.Firewalls, func(f *hcloud.ServerFirewallStatus) bool {
			return f.Firewall.ID == fw.ID
		}) {
			p.Steps = append(p.Steps, applyFirewallStep(spec.Name))
		}
		return nil
	}
	st, err := c.checkServerType(ctx, spec.ServerType, spec.Location)
	if err != nil {
		return err
	}
	p.Steps = append(p.Steps, Step{
		Method: "POST", Path: "/servers",
		Summary: fmt.Sprintf("create server %q (%s in %s, image %s, ssh key and firewall %q, %d bytes of user data)",
			spec.Name, spec.ServerType, spec.Location, spec.Image, spec.Name, len(spec.UserData)),
		run: func(ctx context.Context, c *Client, s *state) error {
			return c.createServer(ctx, spec, st, s)
		},
	})
	return nil
}

func applyFirewallStep(name string) Step {
	return Step{
		Method: "POST", Path: "/firewalls/{id}/actions/apply_to_resources",
		Summary: fmt.Sprintf("apply firewall %q to server %q", name, name),
		run: func(ctx context.Context, c *Client, st *state) error {
			actions, _, err := c.api.Firewall.ApplyResources(ctx, st.firewall, []hcloud.FirewallResource{{
				Type: hcloud.FirewallResourceTypeServer, Server: &hcloud.FirewallResourceServer{ID: st.server.ID},
			}})
			if err != nil {
				return err
			}
			return c.wait(ctx, actions...)
		},
	}
}

// checkServerType fails unless the server type is offered in the location
// right now (ServerType.Locations; the per-datacenter lists are
// deprecated by Hetzner).
func (c *Client) checkServerType(ctx context.Context, typ, loc string) (*hcloud.ServerType, error) {
	st, _, err := c.api.ServerType.GetByName(ctx, typ)
	if err != nil {
		return nil, fmt.Errorf("looking up server type %q: %w", typ, err)
	}
	if st == nil {
		return nil, fmt.Errorf("unknown server type %q", typ)
	}
	var avail []string
	for _, l := range st.Locations {
		if l.Location == nil || !l.Available {
			continue
		}
		if l.Location.Name == loc {
			return st, nil
		}
		avail = append(avail, l.Location.Name)
	}
	return nil, fmt.Errorf("server type %s is not available in %s (available in: %s)", typ, loc, strings.Join(avail, ", "))
}

func (c *Client) createServer(ctx context.Context, spec Spec, typ *hcloud.ServerType, st *state) error {
	res, _, err := c.api.Server.Create(ctx, hcloud.ServerCreateOpts{
		Name:       spec.Name,
		ServerType: typ,
		Image:      &hcloud.Image{Name: spec.Image},
		Location:   &hcloud.Location{Name: spec.Location},
		SSHKeys:    []*hcloud.SSHKey{st.key},
		Firewalls:  []*hcloud.ServerCreateFirewall{{Firewall: hcloud.Firewall{ID: st.firewall.ID}}},
		UserData:   spec.UserData,
		Labels:     labels(),
	})
	if err != nil {
		return err
	}
	st.server = res.Server
	return c.wait(ctx, append([]*hcloud.Action{res.Action}, res.NextActions...)...)
}
