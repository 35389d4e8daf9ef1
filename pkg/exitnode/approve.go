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

// findDevice looks the node up by its node key, the one identity the
// device proves to control. A host name is chosen by whoever runs the
// device: approving by name would give exit routes to any tailnet member
// that takes this node's name. When the key is not listed yet (a key
// rotation the API has not seen), the approval waits for the next run.
func findDevice(ctx context.Context, c *tailscale.Client, st *ipnstate.Status) (*tailscale.Device, error) {
	devs, err := c.Devices().List(ctx, tailscale.WithFields(tailscale.IncludeFieldsAll))
	if err != nil {
		return nil, fmt.Errorf("listing tailnet devices: %w", err)
	}
	nodeKey := st.Self.PublicKey.String()
	for i := range devs {
		if devs[i].NodeKey == nodeKey {
			return &devs[i], nil
		}
	}
	return nil, fmt.Errorf("no device with this node's key %s in the tailnet (host name %q is not proof of identity; "+
		"not approving until the API lists the key)", nodeKey, st.Self.HostName)
}
