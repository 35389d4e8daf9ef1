package daemon

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/failpoint"
	"github.com/avalanche-fleet/avalanche/agent/internal/fault"
	"github.com/avalanche-fleet/avalanche/agent/internal/journal"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild"
)

// errCutShort is the cause of a step that a stop, a crash or a power cut
// ended: no verdict on the commit.
var errCutShort = fault.New(fault.Shutdown, errors.New("cut short by a stop, crash or power cut of the agent"))

// recover settles a deployment that a previous process left open (or that
// a stop cut short in this one): it finishes or undoes the step in flight,
// judging from the journal and from what actually runs. It runs under the
// pass lock, before anything else. ok is false while the flight is still
// open; nothing else may run then.
func (d *Daemon) recover(ctx context.Context) (res passResult, ok bool) {
	d.mu.Lock()
	var f *journal.Flight
	if d.flight != nil {
		cp := *d.flight
		f = &cp
	}
	d.mu.Unlock()
	if f == nil {
		d.undrain(ctx) // a node left cordoned once its flight or reboot is over
		return passResult{}, true
	}
	if !f.Open() {
		// Ended, but the state file may not know yet, nor the post-deploy
		// hook and the forge: the journal is emptied only after them.
		var cause error
		if f.Cause != "" {
			cause = errors.New(f.Cause)
		}
		d.releaseLease(ctx, f) // ended, but its release may not be on record
		d.finish(ctx, f, cause)
		return passResult{}, true
	}
	d.setPhase(status.Recovering, fmt.Sprintf("deployment of %s stopped at %s (%s)", short(f.Commit), f.Step, f.Event))
	failpoint.Hit("recovery")
	d.Log.Warn().Str("commit", f.Commit).Uint64("flight", f.ID).Str("phase", f.Step).Str("event", f.Event).
		Str("running", resolve(d.Config.Deploy.CurrentSystem)).Msg("recovering a deployment that was cut short")
	d.resumeLease(ctx, f)
	res = d.resume(ctx, f)
	return res, !d.flight.Open()
}

// resume finishes or undoes f from the step it stopped at.
func (d *Daemon) resume(ctx context.Context, f *journal.Flight) passResult {
	if f.Event == journal.Failed && fault.Class(f.Class).Verdict() &&
		(f.Step == journal.StepSwitch || f.Step == journal.StepConfirm) {
		return d.rollback(ctx, f, errors.New(f.Cause)) // judged already; the rollback never began
	}
	switch f.Step {
	case journal.StepBegin, journal.StepEvaluate, journal.StepBuild, journal.StepLease, journal.StepSecrets, journal.StepDrain, journal.StepProfile:
		return d.resumeBeforeSwitch(ctx, f)
	case journal.StepSwitch:
		return d.resumeSwitch(ctx, f)
	case journal.StepConfirm:
		if f.Event == journal.Done {
			return d.end(ctx, f, resultDeployed, nil)
		}
		if !d.switched(f) {
			// A reboot brought the previous system back before the
			// deployment was confirmed.
			return d.cutShort(ctx, f)
		}
		return d.run(ctx, f, d.stepsFrom(journal.StepConfirm))
	case journal.StepRollback:
		if f.Event == journal.Done {
			return d.end(ctx, f, resultRolledBack, errors.New(f.Cause))
		}
		return d.rollback(ctx, f, errors.New(f.Cause))
	}
	return d.end(ctx, f, resultInterrupted, errCutShort)
}

// resumeBeforeSwitch undoes what the steps before the switch may have
// changed (the secrets link, the profile); the commit is tried again.
func (d *Daemon) resumeBeforeSwitch(ctx context.Context, f *journal.Flight) passResult {
	f.FailedStep = f.Step
	if f.Step == journal.StepProfile {
		d.undoProfile(ctx, f)
	}
	if _, err := d.undoSecrets(ctx, f); err != nil {
		d.Log.Error().Err(err).Str("commit", f.Commit).Msg("restoring the secrets of the running system")
	}
	f.Cause, f.Class = errCutShort.Error(), string(fault.Shutdown)
	return d.end(ctx, f, resultInterrupted, errCutShort)
}

// resumeSwitch judges a switch that may have run while no agent watched:
// wait for its unit, then confirm what runs, or return to the previous
// system when the target does not run.
func (d *Daemon) resumeSwitch(ctx context.Context, f *journal.Flight) passResult {
	if f.Event == journal.Done {
		return d.run(ctx, f, d.stepsFrom(journal.StepConfirm))
	}
	if err := d.awaitUnit(ctx, f.Unit, f.SwitchBy); err != nil {
		if fault.Of(err) == fault.Shutdown {
			return passResult{result: resultInterrupted, err: err, class: fault.Shutdown}
		}
		f.FailedStep = journal.StepSwitch
		return d.rollback(ctx, f, err)
	}
	if r, ok := d.switchResult(f.Unit); ok && r.Failed() {
		// It failed while no agent watched; what runs may look switched
		// (switch-to-configuration changes the system before it fails).
		f.FailedStep = journal.StepSwitch
		return d.rollback(ctx, f, fault.New(fault.Commit, switchFailure(f, r, d.Config.Deploy.SwitchTimeout.D())))
	}
	if d.switched(f) {
		if err := d.handOver(ctx, f); err != nil { // the switch ran unwatched
			f.FailedStep = journal.StepSwitch
			return d.rollback(ctx, f, err)
		}
		return d.run(ctx, f, d.stepsFrom(journal.StepConfirm))
	}
	return d.cutShort(ctx, f)
}

// cutShort rolls back a deployment whose activation a crash or power cut
// ended: the host may be half-switched, so the previous system is
// activated again. No verdict, unless this commit's activation keeps
// being cut short.
func (d *Daemon) cutShort(ctx context.Context, f *journal.Flight) passResult {
	f.FailedStep = journal.StepSwitch
	d.mu.Lock()
	n := interruptions(d.st, f.Commit, journal.StepSwitch)
	d.mu.Unlock()
	if n >= interruptLimit {
		f.Cause = ""
		return d.rollback(ctx, f, fault.New(fault.Commit,
			fmt.Errorf("activation was cut short %d times in a row (the host crashed or lost power each time)", n)))
	}
	f.Cause, f.Class = errCutShort.Error(), string(fault.Shutdown)
	return d.rollback(ctx, f, errCutShort)
}

// switched reports whether f's target is what the host now runs (for
// boot: what it boots next).
func (d *Daemon) switched(f *journal.Flight) bool {
	if f.Action == "boot" {
		return resolve(d.Config.Deploy.Profile) == f.StorePath
	}
	return resolve(d.Config.Deploy.CurrentSystem) == f.StorePath
}

// switchFailure says how f's switch unit failed, from its recorded result.
func switchFailure(f *journal.Flight, r rebuild.UnitResult, limit time.Duration) error {
	if r.Result == "timeout" {
		return fmt.Errorf("%s ran longer than deploy.switchTimeout (%s) and was stopped (%s)", f.Unit, limit, r)
	}
	return fmt.Errorf("switch-to-configuration failed in %s while the agent was down (%s; see journalctl -u %s)", f.Unit, r, f.Unit)
}
