package nspawntest

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/journal"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
)

// TestSystemd runs the scenarios that can share one booted host, in order:
// each leaves the host deployed and idle.
func TestSystemd(t *testing.T) {
	h := NewHost(t, HostOptions{Name: "avalanche-test", First: nixtest.FlakeOptions{Marker: "first"},
		Module: `deploy.confirmTimeout = "8s";`})
	first := nixtest.Git(t, h.Repo.Work, "rev-parse", "HEAD")
	h.Deployed(t, first, 2*time.Minute)

	t.Run("ready and status", func(t *testing.T) {
		p := h.Show(t, "avalanche-agent", "Type", "ActiveState", "SubState", "StatusText", "WatchdogUSec", "NRestarts")
		if p["Type"] != "notify" || p["ActiveState"] != "active" || p["SubState"] != "running" {
			t.Errorf("systemctl show avalanche-agent = %v; want a notify unit, active (running)", p)
		}
		if !strings.Contains(p["StatusText"], first[:8]) {
			t.Errorf("StatusText = %q; want the deployed commit %s", p["StatusText"], first[:8])
		}
	})

	t.Run("push deployed through a transient switch unit", func(t *testing.T) {
		c := h.Commit(t, nixtest.FlakeOptions{Marker: "second"}, "second system")
		if out, err := h.Agent(t, "sync", "--wait"); err != nil {
			t.Fatalf("sync --wait: %v\n%s", err, out)
		}
		st := h.Deployed(t, c, time.Minute)
		unit := "avalanche-switch-" + strconv.FormatUint(st.Deployed.Flight, 10)
		j := h.Journal(t, "-u", unit)
		if !strings.Contains(j, unit) {
			t.Errorf("journalctl -u %s shows nothing of the switch:\n%s", unit, j)
		}
	})

	t.Run("a unit failed before the switch is no verdict", func(t *testing.T) {
		h.Run(t, "systemd-run", "--unit=host-trouble", "--service-type=oneshot", "/bin/false")
		defer h.MustRun(t, "systemctl", "reset-failed", "host-trouble")
		if out, _ := h.Run(t, "systemctl", "is-system-running"); strings.TrimSpace(out) != "degraded" {
			t.Fatalf("systemctl is-system-running = %q; want degraded", out)
		}
		c := h.Commit(t, nixtest.FlakeOptions{Marker: "on a degraded host"}, "deployed on a degraded host")
		h.Agent(t, "sync", "--wait")
		h.Deployed(t, c, time.Minute)
	})

	t.Run("a unit the switch breaks refuses the commit", func(t *testing.T) {
		before := h.Status(t).Deployed
		c := h.Commit(t, nixtest.FlakeOptions{Marker: "breaks a unit",
			SwitchCommand: "/usr/bin/systemd-run --unit=broken-by-switch --service-type=oneshot /bin/false || true"}, "breaks a unit")
		defer h.Run(t, "systemctl", "reset-failed", "broken-by-switch")
		h.Agent(t, "sync", "--wait")
		st := h.WaitFor(t, "the commit refused", time.Minute, func(st status.Status) bool { return refused(st, c) && st.Flight == nil })
		if st.Deployed.Commit != before.Commit || !strings.Contains(st.LastError, "broken-by-switch") {
			t.Errorf("deployed %s, last error %q; want %s back and the broken unit named", st.Deployed.Commit[:8], st.LastError, before.Commit[:8])
		}
	})

	t.Run("switch fails while the agent is killed", func(t *testing.T) {
		before := h.Status(t).Deployed
		c := h.Commit(t, nixtest.FlakeOptions{Marker: "fails while down", SwitchSleep: 4 * time.Second, ActivationExit: 4}, "a switch that fails")
		h.killDuringSwitch(t)
		st := h.WaitFor(t, "the failed switch judged", 90*time.Second, func(st status.Status) bool {
			return st.Flight == nil && st.Passes > 0 && refused(st, c)
		})
		if st.Deployed == nil || st.Deployed.Commit != before.Commit {
			t.Errorf("deployed = %+v; want the previous commit %s back", st.Deployed, before.Commit[:8])
		}
		if cur := h.MustRun(t, "readlink", "/run/current-system"); strings.TrimSpace(cur) != before.StorePath {
			t.Errorf("/run/current-system = %s; want the previous system %s", cur, before.StorePath)
		}
	})

	t.Run("switch succeeds while the agent is killed", func(t *testing.T) {
		c := h.Commit(t, nixtest.FlakeOptions{Marker: "succeeds while down", SwitchSleep: 4 * time.Second}, "a slow switch")
		h.killDuringSwitch(t)
		h.Deployed(t, c, 90*time.Second)
	})
}

// killDuringSwitch makes the next switch slow, triggers a pass, SIGKILLs
// the agent while its switch unit runs and waits for that unit to end
// with the agent still down (systemd restarts it after RestartSec=10s).
func (h *Host) killDuringSwitch(t *testing.T) {
	t.Helper()
	h.MustRun(t, "sh", "-c", "mkdir -p /etc/avalanche-test && touch "+SlowMarker)
	defer h.MustRun(t, "rm", "-f", SlowMarker)
	h.MustRun(t, PackageDir+"/bin/avalanche-agent", "sync")
	st := h.WaitFor(t, "the switch", time.Minute, func(st status.Status) bool {
		return st.Flight != nil && st.Flight.Step == journal.StepSwitch
	})
	unit := "avalanche-switch-" + strconv.FormatUint(st.Flight.ID, 10)
	for active(h, unit) != "active" {
		time.Sleep(50 * time.Millisecond)
	}
	h.MustRun(t, "sh", "-c", "kill -KILL $(systemctl show -p MainPID --value avalanche-agent)")
	for s := active(h, unit); s == "active" || s == "activating" || s == "deactivating"; s = active(h, unit) {
		time.Sleep(100 * time.Millisecond)
	}
	if active(h, "avalanche-agent") == "active" {
		t.Fatalf("the agent was back before %s ended: the scenario did not happen", unit)
	}
}

func refused(st status.Status, commit string) bool {
	for _, b := range st.Refused {
		if b.Commit == commit {
			return true
		}
	}
	return false
}

// active is systemctl is-active's answer for unit.
func active(h *Host, unit string) string {
	out, _ := h.RunContext(context.Background(), "systemctl", "is-active", unit)
	return strings.TrimSpace(out)
}
