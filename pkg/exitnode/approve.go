package exitnode

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"tailscale.com/client/tailscale/v2"
	"tailscale.com/ipn/ipnstate"
	"tailscale.com/net/tsaddr"
)

// approve enables the exit routes for this node through the Tailscale API.
// The routes endpoint replaces the whole enabled set, so routes that are
// already enabled are kept.
func (m *Manager) approve(ctx context.Context, st *ipnstate.Status) error {
	c, err := m.apiClient()
	if err != nil {
		return err
	}
	dev, err := findDevice(ctx, c, st)
	if err != nil {
		return err
	}
	routes := slices.Clone(dev.EnabledRoutes)
	for _, r := range tsaddr.ExitRoutes() {
		if !slices.Contains(routes, r.String()) {
			routes = append(routes, r.String())
		}
	}
	if len(routes) == len(dev.EnabledRoutes) {
		return nil // approved already; the local netmap lags behind
	}
	id := dev.NodeID
	if id == "" {
		id = dev.ID
	}
	if err := c.Devices().SetSubnetRoutes(ctx, id, routes); err != nil {
		return fmt.Errorf("approving exit routes for device %s: %w", id, err)
	}
	return nil
}

func (m *Manager) apiClient() (*tailscale.Client, error) {
	key, err := readSecret(m.Config.APIKeyFile)
	if err != nil {
		return nil, fmt.Errorf("reading tailscale api key: %w", err)
	}
	c := &tailscale.Client{APIKey: key, Tailnet: m.Config.Tailnet, HTTP: m.HTTPClient}
	if c.Tailnet == "" {
		c.Tailnet = "-"
	}
	if c.HTTP == nil {
		c.HTTP = &http.Client{Timeout: time.Minute}
	}
	if m.Config.APIBaseURL != "" {
		u, err := url.Parse(m.Config.APIBaseURL)
		if err != nil {
			return nil, fmt.Errorf("parsing api base url: %w", err)
		}
		c.BaseURL = u
	}
	return c, nil
}

// findDevice looks the node up by node key, falling back to its host name
// when the key is not listed (a key rotation the API has not seen yet).
func findDevice(ctx context.Context, c *tailscale.Client, st *ipnstate.Status) (*tailscale.Device, error) {
	devs, err := c.Devices().List(ctx, tailscale.WithFields(tailscale.IncludeFieldsAll))
	if err != nil {
		return nil, fmt.Errorf("listing tailnet devices: %w", err)
	}
	nodeKey, host := st.Self.PublicKey.String(), st.Self.HostName
	for i := range devs {
		if devs[i].NodeKey == nodeKey {
			return &devs[i], nil
		}
	}
	var found *tailscale.Device
	for i := range devs {
		if devs[i].Hostname != host {
			continue
		}
		if found != nil {
			return nil, fmt.Errorf("node key %s not listed and host name %q is ambiguous", nodeKey, host)
		}
		found = &devs[i]
	}
	if found == nil {
		return nil, fmt.Errorf("no device with node key %s or host name %q in the tailnet", nodeKey, host)
	}
	return found, nil
}
