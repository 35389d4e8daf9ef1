// Package client talks to a running agent over its local API socket.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"syscall"

	"github.com/avalanche-fleet/avalanche/agent/internal/state"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
)

// DefaultSocket is the socket of an agent with the default runtimeDir.
const DefaultSocket = "/run/avalanche-agent/agent.sock"

// ErrNotRunning reports that no agent answers on the socket.
var ErrNotRunning = errors.New("the avalanche-agent daemon is not running")

// Client is a local API client. Its zero value uses DefaultSocket.
type Client struct {
	Socket string
}

func (c *Client) socket() string {
	if c.Socket == "" {
		return DefaultSocket
	}
	return c.Socket
}

func (c *Client) http() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", c.socket())
		},
	}}
}

func (c *Client) do(ctx context.Context, method, path string, q url.Values, out any) error {
	u := "http://local-avalanche-agent" + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return err
	}
	hc := c.http()
	defer hc.CloseIdleConnections()
	resp, err := hc.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("%w (no answer on %s)", ErrNotRunning, c.socket())
		}
		if errors.Is(err, syscall.EACCES) {
			return fmt.Errorf("connecting to %s: permission denied (join the agent's group, or use sudo)", c.socket())
		}
		return fmt.Errorf("connecting to %s: %w", c.socket(), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(body, out)
}

// Status returns the agent's status.
func (c *Client) Status(ctx context.Context) (status.Status, error) {
	var s status.Status
	err := c.do(ctx, http.MethodGet, "/v1/status", nil, &s)
	return s, err
}

// History returns the deployment history, oldest first.
func (c *Client) History(ctx context.Context) ([]state.Deployment, error) {
	var h []state.Deployment
	err := c.do(ctx, http.MethodGet, "/v1/history", nil, &h)
	return h, err
}

// Sync asks for a pass now. With wait it returns once that pass ended;
// with force it also retries a commit that failed before.
func (c *Client) Sync(ctx context.Context, wait, force bool) (status.SyncResult, error) {
	q := url.Values{}
	if wait {
		q.Set("wait", "1")
	}
	if force {
		q.Set("force", "1")
	}
	var r status.SyncResult
	err := c.do(ctx, http.MethodPost, "/v1/sync", q, &r)
	return r, err
}

// Suspend stops deployments until Resume.
func (c *Client) Suspend(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/v1/suspend", nil, nil)
}

// Resume lifts a Suspend.
func (c *Client) Resume(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/v1/resume", nil, nil)
}

// Rollback returns to the previous deployment and marks the current commit bad.
func (c *Client) Rollback(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/v1/rollback", nil, nil)
}
