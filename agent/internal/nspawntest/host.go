package nspawntest

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/status"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
)

// RepoPath is where the container sees the fleet repository (a bare
// repository on the host, bind-mounted: the service's PrivateTmp hides /tmp).
const RepoPath = "/srv/fleet.git"

// Marker files in the container that the test systems' switch-to-configuration reads.
const (
	FailMarker = "/etc/avalanche-test/fail" // switch-to-configuration exits 1
	SlowMarker = "/etc/avalanche-test/slow" // switch-to-configuration sleeps first
)

// HostOptions shapes NewHost.
type HostOptions struct {
	// Name is the machine name (unique among parallel machines).
	Name string
	// Module is extra module options, a Nix attribute set merged with the
	// repository URL (e.g. `deploy.confirmTimeout = "20s";`).
	Module string
	// NixOS is extra top-level module content, a Nix attribute set body
	// that may use lib (e.g. an override of the unit a scenario states).
	NixOS string
	// Tags are the agent's build tags ("failpoint").
	Tags string
	// DropIn holds [Service] lines a scenario overrides, stated by it.
	DropIn string
	// Setup runs on the container's root before it boots (users, files).
	Setup func(t testing.TB, root string)
	// First is the first system committed before boot.
	First nixtest.FlakeOptions
}

// Host is a booted container running the agent as the module's unit,
// following a bare repository on the host.
type Host struct {
	*Machine
	Repo *nixtest.Repo
	Unit Unit
}

// NewHost commits opts.First, installs the agent and boots; the agent's
// first pass deploys that commit (Wait for it).
func NewHost(t testing.TB, opts HostOptions) *Host {
	t.Helper()
	lower := Require(t)
	repo := nixtest.NewRepo(t, "main")
	h := &Host{Repo: repo}
	h.Commit(t, opts.First, "first system")
	module := fmt.Sprintf(`{ lib, ... }: { services.avalanche-agent = { repository.url = %q; pollInterval = "1h"; %s }; %s }`,
		RepoPath, opts.Module, opts.NixOS)
	start := time.Now()
	h.Unit = EvalUnit(t, module)
	bin := BuildAgent(t, opts.Tags)
	t.Logf("module evaluated and agent built in %s", time.Since(start).Round(time.Millisecond))
	h.Machine = NewMachine(t, lower, opts.Name, repo.Bare+":"+RepoPath)
	Install(t, h.Machine, h.Unit, bin, opts.DropIn)
	if opts.Setup != nil {
		opts.Setup(t, h.Root)
	}
	start = time.Now()
	h.Boot(t)
	t.Logf("booted in %s", time.Since(start).Round(time.Millisecond))
	return h
}

// Commit writes a test system (named for the module's host, linking
// /run/current-system, reading the marker files) to main and returns the commit.
func (h *Host) Commit(t testing.TB, opts nixtest.FlakeOptions, msg string) string {
	t.Helper()
	return h.Repo.WriteFlake(t, h.flake(opts), msg)
}

// flake fills in what every test system of a Host has.
func (h *Host) flake(opts nixtest.FlakeOptions) nixtest.FlakeOptions {
	if opts.Name == "" {
		opts.Name = "machine"
	}
	opts.CurrentSystemLink = "/run/current-system"
	if opts.FailMarker == "" {
		opts.FailMarker = FailMarker
	}
	if opts.SwitchSlowMarker == "" && opts.SwitchSleep > 0 {
		opts.SwitchSlowMarker = SlowMarker
	}
	return opts
}

// Agent runs avalanche-agent args in the container.
func (h *Host) Agent(t testing.TB, args ...string) (string, error) {
	t.Helper()
	return h.Run(t, append([]string{PackageDir + "/bin/avalanche-agent"}, args...)...)
}

// Status is `avalanche-agent status --json`.
func (h *Host) Status(t testing.TB) status.Status {
	t.Helper()
	out, err := h.Agent(t, "status", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var st status.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("decoding status --json: %v\n%s", err, out)
	}
	return st
}

// WaitFor polls status until ok accepts it, failing t after timeout with
// the last status and the agent's journal.
func (h *Host) WaitFor(t testing.TB, what string, timeout time.Duration, ok func(status.Status) bool) status.Status {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out, err := h.Agent(t, "status", "--json")
		var st status.Status
		if err == nil && json.Unmarshal([]byte(out), &st) == nil && ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: not within %s; last status (err %v):\n%s\njournal:\n%s", what, timeout, err, out, h.Journal(t, "-u", "avalanche-agent"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Deployed waits until commit is deployed and the agent idle.
func (h *Host) Deployed(t testing.TB, commit string, timeout time.Duration) status.Status {
	t.Helper()
	return h.WaitFor(t, "deployment of "+commit[:8], timeout, func(st status.Status) bool {
		return st.Deployed != nil && st.Deployed.Commit == commit && st.Deployed.Result == "deployed" && st.Flight == nil
	})
}

// Journal is journalctl's output for args (no pager, no hostname column).
func (h *Host) Journal(t testing.TB, args ...string) string {
	t.Helper()
	out, _ := h.Run(t, append([]string{"journalctl", "--no-pager", "-q"}, args...)...)
	return out
}

// Show returns systemctl show's properties of unit.
func (h *Host) Show(t testing.TB, unit string, props ...string) map[string]string {
	t.Helper()
	out, _ := h.Run(t, "systemctl", "show", unit, "-p", strings.Join(props, ","))
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			m[k] = v
		}
	}
	return m
}
