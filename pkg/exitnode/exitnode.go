// Package exitnode keeps a tailscaled instance registered as a Tailscale
// exit node: logged in, advertising 0.0.0.0/0 and ::/0 and, when an API key
// is configured, with those routes approved in the tailnet.
//
// Manager.Ensure is meant to run after every activation and on every agent
// pass. It only changes what has drifted, so calling it repeatedly is cheap
// and safe. The package never logs; callers report the returned Status.
package exitnode

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"tailscale.com/ipn"
	"tailscale.com/ipn/ipnstate"
	"tailscale.com/net/tsaddr"
)

// Config says where the credentials live and which tailnet to talk to.
type Config struct {
	// AuthKeyFile holds a Tailscale auth key, normally an installed SOPS
	// secret. It is read only when tailscaled needs to log in.
	AuthKeyFile string
	// APIKeyFile holds a Tailscale API access token. When empty, route
	// approval is left to the tailnet policy (autoApprovers.exitNode).
	APIKeyFile string
	// Tailnet is the tailnet name for the API; "" and "-" mean the
	// default tailnet of the API key.
	Tailnet string
	// APIBaseURL overrides https://api.tailscale.com (tests).
	APIBaseURL string
}

// LocalAPI is the subset of *local.Client (tailscale.com/client/local) that
// Manager uses.
type LocalAPI interface {
	Status(ctx context.Context) (*ipnstate.Status, error)
	GetPrefs(ctx context.Context) (*ipn.Prefs, error)
	EditPrefs(ctx context.Context, mp *ipn.MaskedPrefs) (*ipn.Prefs, error)
	Start(ctx context.Context, opts ipn.Options) error
	StartLoginInteractive(ctx context.Context) error
}

// Manager converges tailscaled towards being an approved exit node.
type Manager struct {
	Local  LocalAPI
	Config Config
	// HTTPClient is used for the Tailscale API; nil means a client with a
	// one-minute timeout.
	HTTPClient *http.Client
	// LoginTimeout bounds how long Ensure waits for tailscaled to reach
	// the Running state after a login; zero means two minutes.
	LoginTimeout time.Duration
}

// Status is what Ensure observed and did.
type Status struct {
	LoggedIn   bool     // tailscaled is in the Running state
	Advertised bool     // prefs advertise both exit routes
	Approved   bool     // the control plane has enabled both exit routes
	Online     bool     // tailscaled holds a live map session with control
	Repaired   []string // what Ensure changed: "login", "want-running", "advertise", "approve"
	NodeName   string   // the node's MagicDNS name, or its host name
}

// Repair names reported in Status.Repaired.
const (
	RepairLogin       = "login"
	RepairWantRunning = "want-running"
	RepairAdvertise   = "advertise"
	RepairApprove     = "approve"
)

// pollInterval is how often Ensure re-reads the status while waiting.
const pollInterval = 100 * time.Millisecond

// Ensure brings tailscaled to the wanted state and reports it. An error
// means a step could not be completed; the returned Status still says
// what was observed and repaired up to then.
func (m *Manager) Ensure(ctx context.Context) (Status, error) {
	var s Status
	st, err := m.Local.Status(ctx)
	if err != nil {
		return s, fmt.Errorf("reading tailscale status: %w", err)
	}
	if st, err = m.ensureRunning(ctx, st, &s); err != nil {
		return s, err
	}
	s.LoggedIn = true
	s.NodeName = nodeName(st)
	s.Online = st.Self != nil && st.Self.Online
	if err := m.ensureAdvertised(ctx, &s); err != nil {
		return s, err
	}
	s.Approved = approvedLocally(st)
	if s.Approved || m.Config.APIKeyFile == "" {
		return s, nil
	}
	if err := m.approve(ctx, st); err != nil {
		return s, err
	}
	s.Approved = true
	s.Repaired = append(s.Repaired, RepairApprove)
	return s, nil
}

// ensureRunning logs in or sets WantRunning as needed and returns the
// status once the backend runs.
func (m *Manager) ensureRunning(ctx context.Context, st *ipnstate.Status, s *Status) (*ipnstate.Status, error) {
	switch st.BackendState {
	case ipn.Running.String():
		return st, nil
	case ipn.Stopped.String():
		if _, err := m.Local.EditPrefs(ctx, &ipn.MaskedPrefs{
			Prefs: ipn.Prefs{WantRunning: true}, WantRunningSet: true,
		}); err != nil {
			return st, fmt.Errorf("setting want-running: %w", err)
		}
		s.Repaired = append(s.Repaired, RepairWantRunning)
	default:
		if err := m.login(ctx, st); err != nil {
			return st, err
		}
		s.Repaired = append(s.Repaired, RepairLogin)
	}
	return m.waitRunning(ctx)
}

// login starts tailscaled with the auth key, as `tailscale up --auth-key`
// does: Start with the current prefs plus the key, then an interactive
// login when no node key exists yet.
func (m *Manager) login(ctx context.Context, st *ipnstate.Status) error {
	if m.Config.AuthKeyFile == "" {
		return fmt.Errorf("tailscale needs login (state %s) and no auth key file is configured", st.BackendState)
	}
	key, err := readSecret(m.Config.AuthKeyFile)
	if err != nil {
		return fmt.Errorf("reading auth key: %w", err)
	}
	prefs, err := m.Local.GetPrefs(ctx)
	if err != nil {
		return fmt.Errorf("reading tailscale prefs: %w", err)
	}
	prefs = prefs.Clone()
	prefs.WantRunning = true
	prefs.AdvertiseRoutes = withExitRoutes(prefs.AdvertiseRoutes)
	if err := m.Local.Start(ctx, ipn.Options{AuthKey: key, UpdatePrefs: prefs}); err != nil {
		return fmt.Errorf("starting tailscale login: %w", err)
	}
	if !st.HaveNodeKey {
		if err := m.Local.StartLoginInteractive(ctx); err != nil {
			return fmt.Errorf("starting tailscale login: %w", err)
		}
	}
	return nil
}

// waitRunning polls the status until the backend runs or LoginTimeout
// passes; the timeout error carries the state and health warnings, which
// name the cause when control is unreachable.
func (m *Manager) waitRunning(ctx context.Context) (*ipnstate.Status, error) {
	timeout := m.LoginTimeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last *ipnstate.Status
	for {
		st, err := m.Local.Status(ctx)
		if err == nil && st.BackendState == ipn.Running.String() && st.Self != nil && len(st.Self.TailscaleIPs) > 0 {
			return st, nil
		}
		if err == nil {
			last = st
		}
		select {
		case <-ctx.Done():
			return nil, waitError(last, ctx.Err())
		case <-time.After(pollInterval):
		}
	}
}

func waitError(st *ipnstate.Status, err error) error {
	if st == nil {
		return fmt.Errorf("waiting for tailscale to run: %w", err)
	}
	msg := fmt.Sprintf("waiting for tailscale to run (state %s", st.BackendState)
	if len(st.Health) > 0 {
		msg += "; " + strings.Join(st.Health, "; ")
	}
	return fmt.Errorf("%s): %w", msg, err)
}

// ensureAdvertised re-adds the exit routes when someone removed them,
// keeping any other advertised subnet routes.
func (m *Manager) ensureAdvertised(ctx context.Context, s *Status) error {
	prefs, err := m.Local.GetPrefs(ctx)
	if err != nil {
		return fmt.Errorf("reading tailscale prefs: %w", err)
	}
	if hasExitRoutes(prefs.AdvertiseRoutes) {
		s.Advertised = true
		return nil
	}
	_, err = m.Local.EditPrefs(ctx, &ipn.MaskedPrefs{
		Prefs:              ipn.Prefs{AdvertiseRoutes: withExitRoutes(prefs.AdvertiseRoutes)},
		AdvertiseRoutesSet: true,
	})
	if err != nil {
		return fmt.Errorf("advertising exit routes: %w", err)
	}
	s.Advertised = true
	s.Repaired = append(s.Repaired, RepairAdvertise)
	return nil
}

func hasExitRoutes(routes []netip.Prefix) bool {
	return slices.Contains(routes, tsaddr.AllIPv4()) && slices.Contains(routes, tsaddr.AllIPv6())
}

// withExitRoutes returns routes plus whichever exit route is missing.
func withExitRoutes(routes []netip.Prefix) []netip.Prefix {
	out := slices.Clone(routes)
	for _, r := range tsaddr.ExitRoutes() {
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

// approvedLocally reports whether the netmap already allows this node to
// carry both exit routes (the control plane approved them).
func approvedLocally(st *ipnstate.Status) bool {
	if st.Self == nil || st.Self.AllowedIPs == nil {
		return false
	}
	return hasExitRoutes(st.Self.AllowedIPs.AsSlice())
}

func nodeName(st *ipnstate.Status) string {
	if st.Self == nil {
		return ""
	}
	if n := strings.TrimSuffix(st.Self.DNSName, "."); n != "" {
		return n
	}
	return st.Self.HostName
}

func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", errors.New(path + " is empty")
	}
	return v, nil
}
