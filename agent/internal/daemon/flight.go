package daemon

import (
	"context"
	"errors"
	"fmt"

	"github.com/avalanche-fleet/avalanche/agent/internal/fault"
	"github.com/avalanche-fleet/avalanche/agent/internal/journal"
	"github.com/avalanche-fleet/avalanche/agent/internal/state"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
)

// Results a flight ends with.
const (
	resultDeployed    = "deployed"
	resultUpToDate    = "up-to-date"
	resultFailed      = "failed"
	resultRolledBack  = "rolled-back"
	resultInterrupted = "interrupted"
	resultSuperseded  = "superseded"
)

// interruptLimit is how many times in a row a commit's activation may be
// cut short (a crash or power cut each time) before the commit is refused:
// a system whose activation takes the host down must not loop forever.
const interruptLimit = 3

// begin opens a flight towards t, journaling what runs now: everything a
// rollback or a recovery will need.
func (d *Daemon) begin(t target, reason string) (*journal.Flight, error) {
	d.mu.Lock()
	var prev *state.Deployment
	if d.st.Deployed != nil {
		cp := *d.st.Deployed
		prev = &cp
	}
	id := d.st.LastFlight + 1
	d.mu.Unlock()
	f := &journal.Flight{ID: id, Reason: reason, Commit: t.commit, Branch: t.branch, Action: t.action,
		Source: t.source, Fallback: t.fallback,
		Previous: prev, PreviousSystem: resolve(d.Config.Deploy.CurrentSystem), PreviousGeneration: d.generation(),
		Started: d.now()}
	if d.Secrets != nil {
		f.PreviousSecrets, _ = d.Secrets.Current()
	}
	if err := d.record(f, journal.StepBegin, journal.Intent); err != nil {
		return nil, err
	}
	d.event(f, "pending")
	return f, nil
}

// event tells Hooks.Deployment that f started or ended with result.
func (d *Daemon) event(f *journal.Flight, result string) {
	if d.Hooks.Deployment == nil {
		return
	}
	ev := DeploymentEvent{Flight: f.ID, Commit: f.Commit, Branch: f.Branch, Reason: f.Reason, Result: result, Time: d.now()}
	if result != "pending" && result != resultDeployed && result != resultUpToDate {
		ev.Error, ev.Class = f.Cause, f.Class
	}
	d.Hooks.Deployment(ev)
}

// record journals f at step and event. The side effect of an intent waits
// for this; a journal that cannot be written is the host's trouble.
func (d *Daemon) record(f *journal.Flight, step, event string) error {
	f.Step, f.Event, f.Time = step, event, d.now()
	if err := d.jrnl.Append(*f); err != nil {
		return fault.New(fault.Host, err)
	}
	cp := *f
	d.mu.Lock()
	d.flight = &cp
	d.mu.Unlock()
	return nil
}

// end closes f: it journals the end, settles the outcome in the state file
// and empties the journal. cause is the failure, nil on success.
func (d *Daemon) end(ctx context.Context, f *journal.Flight, result string, cause error) passResult {
	f.Result = result
	if cause != nil && f.Cause == "" {
		f.Cause, f.Class = cause.Error(), string(classify(ctx, cause))
	}
	d.releaseLease(ctx, f)
	if err := d.record(f, journal.StepEnd, journal.Done); err != nil {
		// The end is not on disk: the next start settles the flight from
		// its last step instead. Still tell what happened.
		d.Log.Error().Err(err).Uint64("flight", f.ID).Msg("journaling the end of a deployment")
	}
	return d.finish(ctx, f, cause)
}

// finish settles an ended flight in the state file, tells about it (log,
// post-deploy hook, forge status) and only then empties the journal: after
// a crash before that, the next start finds the ended flight and tells
// again (at least once) instead of never.
func (d *Daemon) finish(ctx context.Context, f *journal.Flight, cause error) passResult {
	dep, saved := d.settle(f)
	d.report(ctx, f, dep, cause)
	d.event(f, f.Result)
	if saved {
		if err := d.jrnl.Reset(); err != nil {
			d.Log.Error().Err(err).Msg("emptying the deployment journal")
		}
	}
	return d.outcome(f, cause)
}

// settle applies an ended flight to the state and saves it; saved is false
// when the state file could not be written (the journal must then stay).
// It is idempotent: a flight already settled is not applied again.
func (d *Daemon) settle(f *journal.Flight) (dep state.Deployment, saved bool) {
	dep = deploymentOf(f)
	d.mu.Lock()
	if f.ID > d.st.LastFlight {
		d.apply(f, dep)
		d.st.LastFlight = f.ID
	}
	d.flight = nil
	d.mu.Unlock()
	if saved = d.save() == nil; saved {
		d.dropSwitchResults(f) // the switch's recorded result is settled now
	}
	d.pruneGCRoots()
	return dep, saved
}

// apply changes the state for f's result; d.mu is held.
func (d *Daemon) apply(f *journal.Flight, dep state.Deployment) {
	st := d.st
	verdict := fault.Class(f.Class).Verdict()
	switch {
	case f.Result == resultDeployed || f.Result == resultUpToDate:
		st.Deployed = &dep
		if dep.Action != "test" {
			st.Base = &dep
		}
		if dep.Branch == d.Config.Repository.Branch {
			st.LastMain = dep.Commit
		}
		st.LastError, d.lastErr = nil, ""
		st.Drift, st.Interrupted = nil, nil
		if st.Awaiting != nil && st.Awaiting.Commit == f.Commit {
			st.Awaiting = nil // deployed by the fallback: the wait is over
		}
	case f.Result == resultRolledBack:
		if f.Previous != nil {
			st.Deployed = f.Previous
		}
		if !verdict {
			d.interrupted(f, &dep, "rolled back to the previous system; the commit will be tried again")
			break
		}
		d.failure(f, f.FailedStep, f.Cause+"; rolled back"+rollbackSuffix(f))
	case f.Result == resultInterrupted:
		d.interrupted(f, &dep, "nothing had changed on the host; the commit will be tried again")
	case f.Result == resultFailed:
		d.failure(f, f.FailedStep, f.Cause)
	case f.Result == resultSuperseded:
		return
	}
	if verdict {
		st.MarkBad(f.Commit, f.FailedStep, f.Cause, d.now())
	}
	if verdict || f.Result != resultFailed {
		st.Record(dep)
	}
}

// interrupted records that f was cut short without a verdict.
func (d *Daemon) interrupted(f *journal.Flight, dep *state.Deployment, resolution string) {
	d.st.Interrupted = &state.Interruption{Commit: f.Commit, Step: f.FailedStep, Time: d.now(),
		Count: interruptions(d.st, f.Commit, f.FailedStep), Resolution: resolution}
	dep.Result = resultInterrupted
}

// interruptions is how many times in a row commit's step will have been
// cut short, counting this one; only activations are counted up.
func interruptions(st *state.State, commit, step string) int {
	if in := st.Interrupted; in != nil && in.Commit == commit && in.Step == step && step == journal.StepSwitch {
		return in.Count + 1
	}
	return 1
}

// failure sets the last error from f; d.mu is held.
func (d *Daemon) failure(f *journal.Flight, phase, msg string) {
	d.setLastError(f.Commit, phase, msg, fault.Class(f.Class))
}

// setLastError records the most recent failure and its line for status;
// d.mu is held.
func (d *Daemon) setLastError(commit, phase, msg string, class fault.Class) {
	fl := &state.Failure{Commit: commit, Phase: phase, Message: msg, Time: d.now(), Transient: class.Retried(), Class: string(class)}
	d.st.LastError = fl
	d.lastErr = describe(fl)
}

func rollbackSuffix(f *journal.Flight) string {
	if f.RollbackError == "" {
		return ""
	}
	return " (rollback failed: " + f.RollbackError + ")"
}

// deploymentOf is the history record of an ended flight.
func deploymentOf(f *journal.Flight) state.Deployment {
	dep := state.Deployment{Flight: f.ID, Commit: f.Commit, Branch: f.Branch, Action: f.Action, StorePath: f.StorePath,
		Generation: f.Generation, SecretsGen: f.Secrets, Result: f.Result, Time: f.Time, Duration: f.Time.Sub(f.Started),
		Source: f.Source, Fallback: f.Fallback, Release: f.Release}
	if f.Result != resultDeployed && f.Result != resultUpToDate {
		dep.Error = f.Cause
	}
	if f.Result == resultUpToDate {
		dep.Generation = f.PreviousGeneration
		if f.Previous != nil {
			dep.SecretsGen = f.Previous.SecretsGen
		}
	}
	return dep
}

// outcome is the pass result of an ended flight.
func (d *Daemon) outcome(f *journal.Flight, cause error) passResult {
	class := fault.Class(f.Class)
	switch f.Result {
	case resultDeployed, resultUpToDate:
		return passResult{result: f.Result}
	case resultRolledBack:
		err := fmt.Errorf("%s: %s; rolled back%s", f.FailedStep, f.Cause, rollbackSuffix(f))
		if !class.Verdict() {
			return passResult{result: resultInterrupted, err: err, class: class}
		}
		return passResult{result: resultRolledBack, err: err, class: class}
	}
	if cause == nil {
		cause = errors.New(f.Cause)
	}
	return passResult{result: f.Result, err: cause, class: class}
}

// report logs the end of a flight once, sets the phase and runs the
// post-deploy hook after successes and commit faults.
func (d *Daemon) report(ctx context.Context, f *journal.Flight, dep state.Deployment, cause error) {
	log := d.Log.With().Str("commit", f.Commit).Uint64("flight", f.ID).Str("result", f.Result).
		Dur("deploymentMs", dep.Duration).Logger()
	class := fault.Class(f.Class)
	switch f.Result {
	case resultDeployed:
		log.Info().Str("phase", journal.StepConfirm).Int("generation", dep.Generation).Str("storePath", dep.StorePath).Msg("deployment confirmed")
		d.setPhase(status.Idle, "deployed "+short(f.Commit))
	case resultUpToDate:
		log.Info().Str("phase", journal.StepEvaluate).Str("storePath", dep.StorePath).Msg("system already up to date; nothing to build or switch")
		d.setPhase(status.Idle, "up to date at "+short(f.Commit))
	case resultRolledBack:
		ev := log.Error()
		if !class.Verdict() {
			ev = log.Warn()
		}
		ev.Str("phase", journal.StepRollback).Str("cause", f.Cause).Str("class", f.Class).Str("rollbackError", f.RollbackError).
			Str("previous", f.PreviousSystem).Msg("rolled back")
	case resultInterrupted:
		log.Warn().Str("phase", f.FailedStep).Str("cause", f.Cause).Msg("deployment interrupted; no verdict on the commit")
	case resultSuperseded:
		log.Info().Str("phase", f.FailedStep).Msg(f.Cause)
	default:
		d.logFailure(f.FailedStep, f.Commit, class, f.Cause)
	}
	if f.Result == resultFailed || f.Result == resultRolledBack {
		d.mu.Lock()
		line := d.lastErr
		d.mu.Unlock()
		if line == "" {
			line = f.Result + " " + short(f.Commit)
		}
		d.setPhase(status.Failed, line)
	}
	if f.Result == resultDeployed || f.Result == resultUpToDate || class.Verdict() {
		d.postDeploy(ctx, dep, cause)
	}
	if f.Result == resultDeployed {
		d.maybeReboot(ctx)
	}
	d.undrain(ctx)
}
