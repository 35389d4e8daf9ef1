package nspawntest

import (
	"context"
	"slices"
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
	t.Parallel()
	h := NewHost(t, HostOptions{Name: "avalanche-test", First: nixtest.FlakeOptions{Marker: "first"},
		Module: `deploy.confirmTimeout = "8s"; deploy.switchTimeout = "8s";`})
	first := nixtest.Git(t, h.Repo.Work, "rev-parse", "HEAD")
	h.Deployed(t, first, 2*time.Minute)

	t.Run("ready and status", func(t *testing.T) {
		p := h.Show(t, "avalanche-agent", "Type", "ActiveState", "SubState", "StatusText", "WatchdogUSec", "NRestarts")
		if p["Type"] != "notify" || p["ActiveState"] != "active" || p["SubState"] != "running" || p["WatchdogUSec"] != "1min" {
			t.Errorf("systemctl show avalanche-agent = %v; want a notify unit with the module's watchdog, active (running)", p)
		}
		if want := "idle: deployed " + first[:12] + " from main at "; !strings.HasPrefix(p["StatusText"], want) || !strings.Contains(p["StatusText"], "next poll at") {
			t.Errorf("StatusText = %q; want %q…, next poll at …", p["StatusText"], want)
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
		st := h.Deployed(t, c, time.Minute)
		if !slices.Contains(st.FailedUnits, "host-trouble.service") {
			t.Errorf("status failedUnits = %q; want host-trouble.service shown as host trouble", st.FailedUnits)
		}
		if out, _ := h.Agent(t, "status"); !strings.Contains(out, "host trouble") {
			t.Errorf("status does not show the host trouble:\n%s", out)
		}
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

	t.Run("stop during a build", func(t *testing.T) {
		c := h.Commit(t, nixtest.FlakeOptions{Marker: "slow build", BuildSleep: 20 * time.Second}, "a slow build")
		h.MustRun(t, PackageDir+"/bin/avalanche-agent", "sync")
		h.WaitFor(t, "the build", time.Minute, func(st status.Status) bool {
			return st.Flight != nil && st.Flight.Step == journal.StepBuild
		})
		start := time.Now()
		h.MustRun(t, "systemctl", "stop", "avalanche-agent")
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("systemctl stop during a build took %s; want the build cancelled at once", took)
		}
		h.MustRun(t, "systemctl", "start", "avalanche-agent")
		st := h.WaitFor(t, "the build resumed", time.Minute, func(st status.Status) bool { return st.Flight != nil })
		if refused(st, c) {
			t.Errorf("a stop during the build refused the commit")
		}
		h.Commit(t, nixtest.FlakeOptions{Marker: "after the slow build"}, "supersedes the slow build")
		h.Agent(t, "sync", "--wait")
	})

	t.Run("stop during a slow switch says stopping and waits for it", func(t *testing.T) {
		h.MustRun(t, "sh", "-c", "mkdir -p /etc/avalanche-test && touch "+SlowMarker)
		defer h.MustRun(t, "rm", "-f", SlowMarker)
		c := h.Commit(t, nixtest.FlakeOptions{Marker: "stopped while switching", SwitchSleep: 4 * time.Second}, "a slow switch")
		h.MustRun(t, PackageDir+"/bin/avalanche-agent", "sync")
		h.WaitFor(t, "the switch", time.Minute, func(st status.Status) bool {
			return st.Flight != nil && st.Flight.Step == journal.StepSwitch
		})
		h.MustRun(t, "systemctl", "stop", "--no-block", "avalanche-agent")
		deadline := time.Now().Add(3 * time.Second)
		for text := ""; !strings.HasPrefix(text, "stopping"); text = h.Show(t, "avalanche-agent", "StatusText")["StatusText"] {
			if time.Now().After(deadline) {
				t.Fatalf("StatusText = %q after systemctl stop; want stopping…", text)
			}
			time.Sleep(50 * time.Millisecond)
		}
		for active(h, "avalanche-agent") != "inactive" {
			time.Sleep(100 * time.Millisecond)
		}
		h.MustRun(t, "systemctl", "start", "avalanche-agent")
		h.Deployed(t, c, time.Minute)
	})

	t.Run("the switch time limit", func(t *testing.T) {
		h.MustRun(t, "sh", "-c", "mkdir -p /etc/avalanche-test && touch "+SlowMarker)
		defer h.MustRun(t, "rm", "-f", SlowMarker)
		c := h.Commit(t, nixtest.FlakeOptions{Marker: "too slow", SwitchSleep: 30 * time.Second}, "a switch that never ends")
		h.Agent(t, "sync", "--wait")
		st := h.WaitFor(t, "the commit refused", time.Minute, func(st status.Status) bool { return refused(st, c) && st.Flight == nil })
		if !strings.Contains(st.LastError, "switchTimeout") {
			t.Errorf("last error %q; want the switch time limit named", st.LastError)
		}
	})

	t.Run("status as root, as a group member, as anyone else", func(t *testing.T) {
		h.MustRun(t, "sh", "-c", "id alice || useradd -G avalanche alice; id bob || useradd bob")
		for _, tc := range []struct {
			user string
			ok   bool
		}{{"root", true}, {"alice", true}, {"bob", false}} {
			out, err := h.Run(t, "runuser", "-u", tc.user, "--", PackageDir+"/bin/avalanche-agent", "status")
			if (err == nil) != tc.ok || (tc.ok && !strings.Contains(out, "deployed")) {
				t.Errorf("status as %s: %v\n%s; want ok=%v", tc.user, err, out, tc.ok)
			}
		}
	})

	t.Run("a reboot ends a test deployment", func(t *testing.T) {
		base := h.Status(t).Deployed
		nixtest.WriteFlake(h.Repo.Work, h.flake(nixtest.FlakeOptions{Marker: "testing"}))
		nixtest.Git(t, h.Repo.Work, "commit", "-qam", "on the testing branch")
		nixtest.Git(t, h.Repo.Work, "push", "-q", h.Repo.Bare, "HEAD:refs/heads/testing/machine")
		test := nixtest.Git(t, h.Repo.Work, "rev-parse", "HEAD")
		h.Agent(t, "sync", "--wait")
		st := h.Deployed(t, test, time.Minute)
		if st.Deployed.Action != "test" {
			t.Fatalf("deployed %+v; want action test", st.Deployed)
		}
		if out, _ := h.Agent(t, "status"); strings.Contains(out, "generation 0") {
			t.Errorf("status of a test deployment says generation 0:\n%s", out)
		}
		nixtest.Git(t, h.Repo.Work, "push", "-q", h.Repo.Bare, ":refs/heads/testing/machine")
		h.Reboot(t)
		st = h.WaitFor(t, "the base system back", time.Minute, func(st status.Status) bool {
			return st.Deployed != nil && st.Deployed.Commit == base.Commit && st.Flight == nil
		})
		if cur := strings.TrimSpace(h.MustRun(t, "readlink", "/run/current-system")); cur != base.StorePath {
			t.Errorf("after the reboot /run/current-system = %s; want the base system %s", cur, base.StorePath)
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

	t.Run("a deployment that ships a new agent binary", func(t *testing.T) {
		restarts := h.Show(t, "avalanche-agent", "NRestarts")["NRestarts"]
		c := h.Commit(t, nixtest.FlakeOptions{Marker: "new agent", Agent: "agent v2"}, "ships a new agent")
		h.Agent(t, "sync", "--wait")
		// The agent exits once the deployment is confirmed; Restart=always
		// (RestartSec=10s) starts the unit's ExecStart again (on NixOS the
		// new system's unit names the new package).
		deadline := time.Now().Add(40 * time.Second)
		for h.Show(t, "avalanche-agent", "NRestarts")["NRestarts"] == restarts || active(h, "avalanche-agent") != "active" {
			if time.Now().After(deadline) {
				t.Fatalf("the agent did not restart into the new system's agent:\n%s", h.Journal(t, "-u", "avalanche-agent", "-n", "20"))
			}
			time.Sleep(200 * time.Millisecond)
		}
		h.Deployed(t, c, time.Minute)
		if j := h.Journal(t, "-u", "avalanche-agent", "AVALANCHE_COMMIT="+c); strings.Contains(j, "rolled back") {
			t.Errorf("the restart into the new agent rolled back:\n%s", j)
		}
	})

	t.Run("documented commands", func(t *testing.T) { testDocumentedCommands(t, h) })
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
