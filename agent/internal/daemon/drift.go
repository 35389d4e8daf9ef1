package daemon

import (
	"fmt"
	"os"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/state"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild"
)

// checkDrift compares the system that runs with the one deployed, records
// any difference with its likely cause, and reports whether the pass must
// re-activate the deployed system. A reboot that ended a test deployment
// is not drift: the host is back on its base deployment, which becomes
// what the state names.
func (d *Daemon) checkDrift() (repair bool) {
	d.mu.Lock()
	dep, base, old := d.st.Deployed, d.st.Base, d.st.Drift
	d.mu.Unlock()
	running := resolve(d.Config.Deploy.CurrentSystem)
	if dep == nil || dep.StorePath == "" || running == "" {
		return false
	}
	if d.matches(dep, running) {
		if old != nil {
			d.update(func(st *state.State) { st.Drift = nil })
			d.save()
			d.Log.Info().Str("commit", dep.Commit).Str("running", running).Msg("drift gone: the deployed system runs again")
		}
		return false
	}
	if dep.Action == "test" && base != nil && running == base.StorePath {
		d.testEnded(dep, base)
		return false
	}
	dr := &state.Drift{Running: running, Expected: dep.StorePath, Commit: dep.Commit, Since: d.since(old, running),
		Cause: d.driftCause(dep, running), Repair: "report only (deploy.repairDrift is off)"}
	if d.Config.Deploy.RepairDriftEnabled() {
		dr.Repair = "re-activating " + short(dep.Commit)
	}
	if old == nil || *old != *dr {
		d.update(func(st *state.State) { st.Drift = dr })
		d.save()
		d.Log.Warn().Str("commit", dep.Commit).Str("running", running).Str("expected", dep.StorePath).
			Str("cause", dr.Cause).Str("repair", dr.Repair).Msg("drift: the running system is not the deployed one")
	}
	return d.Config.Deploy.RepairDriftEnabled()
}

// matches reports whether running is what dep should make run. A boot
// deployment runs only after a reboot: until then its profile counts.
func (d *Daemon) matches(dep *state.Deployment, running string) bool {
	if running == dep.StorePath {
		return true
	}
	return dep.Action == "boot" && resolve(d.Config.Deploy.Profile) == dep.StorePath
}

// testEnded records that a reboot ended a test deployment: the host runs
// its base deployment again, and the testing commit is not re-applied by
// itself (that is what deploying with test is for).
func (d *Daemon) testEnded(dep, base *state.Deployment) {
	back := *base
	back.Time = d.now()
	d.update(func(st *state.State) {
		st.Deployed = &back
		st.Drift = nil
		st.TestUndone = dep.Commit
		st.Record(state.Deployment{Commit: dep.Commit, Branch: dep.Branch, Action: dep.Action, StorePath: dep.StorePath,
			Result: "ended-by-reboot", Time: d.now()})
	})
	d.save()
	d.Log.Info().Str("commit", dep.Commit).Str("base", base.Commit).Str("running", base.StorePath).
		Msg("a reboot ended the test deployment; the host runs its base deployment again")
}

// since is when the running system was switched to: the time the link
// changed, or when the drift was first seen.
func (d *Daemon) since(old *state.Drift, running string) time.Time {
	if old != nil && old.Running == running {
		return old.Since
	}
	if fi, err := os.Lstat(d.Config.Deploy.CurrentSystem); err == nil {
		return fi.ModTime()
	}
	return d.now()
}

// driftCause explains in plain words how running likely came to run.
func (d *Daemon) driftCause(dep *state.Deployment, running string) string {
	booted := resolve(d.Config.Deploy.BootedSystem)
	gen, target, err := rebuild.ProfileGeneration(d.Config.Deploy.Profile)
	if err == nil {
		target = resolve(target)
	}
	switch {
	case running == booted && dep.Action == "test":
		return "the host rebooted after a test deployment and runs its boot default"
	case running == booted:
		return "the host booted another generation than the deployed one (a boot-menu choice or a changed boot default)"
	case err == nil && target == running && gen > dep.Generation:
		return fmt.Sprintf("a hand-run rebuild (nixos-rebuild switch) made profile generation %d", gen)
	case err == nil && target == running && gen < dep.Generation:
		return fmt.Sprintf("a manual rollback to profile generation %d (nixos-rebuild switch --rollback)", gen)
	case err == nil && target == running:
		return fmt.Sprintf("profile generation %d was activated by hand", gen)
	}
	return "a system outside the profile was activated by hand (nixos-rebuild test, or switch-to-configuration run directly)"
}
