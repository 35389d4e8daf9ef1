package daemon

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/config"
	"github.com/avalanche-fleet/avalanche/agent/internal/fault"
	"github.com/avalanche-fleet/avalanche/agent/internal/journal"
	"github.com/avalanche-fleet/avalanche/agent/internal/state"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild"
)

// Status implements localapi.Backend.
func (d *Daemon) Status() status.Status {
	d.mu.Lock()
	s := status.Status{
		Hostname:      d.Config.Hostname,
		FlakeOutput:   d.Config.FlakeOutput,
		Version:       d.Version,
		State:         d.phase,
		DaemonRunning: true,
		Suspended:     d.st.Suspended,
		Fetched:       d.fetched,
		LastError:     d.lastErr,
		Store:         d.storeLine,
		Failure:       d.st.LastError,
		NextPoll:      d.nextPoll,
		Passes:        d.passes,
		Refused:       slices.Clone(d.st.Bad),
		FailedUnits:   slices.Clone(d.failedBefore),
	}
	// Copies: the pass changes these records while the snapshot is being
	// encoded outside the lock.
	s.Deployed = clone(d.st.Deployed)
	s.Drift = clone(d.st.Drift)
	s.Interrupted = clone(d.st.Interrupted)
	f := clone(d.flight)
	subst := clone(d.subst)
	wait := clone(d.st.Awaiting)
	c, role := d.Config, d.Builder
	d.mu.Unlock()
	if f.Open() {
		s.Flight = flightStatus(f)
		s.Pending = d.pendingOf(f)
		if f.Source == config.SourceBuilder && f.Step == journal.StepBuild {
			s.Flight.Substitution = subst
		}
	}
	if wait != nil {
		w := d.waitView(*wait)
		s.Waiting = &w
	}
	if role != nil {
		p := role.Progress()
		s.Builder = &p
	}
	if s.State == "" {
		s.State = status.Idle
	}
	if s.Suspended && s.State == status.Idle {
		s.State = status.Suspended
	}
	s.RebootNeeded, s.RebootReasons = rebootNeeded(c)
	s.Rollout = d.gateView()
	s.Lease = d.LeaseView()
	if d.extra != nil {
		d.extra(&s)
	}
	return s
}

func clone[T any](p *T) *T {
	if p == nil {
		return nil
	}
	cp := *p
	return &cp
}

// flightStatus is how status shows an open deployment.
func flightStatus(f *journal.Flight) *status.Flight {
	return &status.Flight{ID: f.ID, Commit: f.Commit, Reason: f.Reason, Step: f.Step, Event: f.Event,
		Since: f.Time, Started: f.Started, Source: f.Source, Fallback: f.Fallback, Release: f.Release}
}

// pendingOf is the activation f waits to confirm, once it reached the
// switch.
func (d *Daemon) pendingOf(f *journal.Flight) *state.Pending {
	switch f.Step {
	case journal.StepSecrets, journal.StepProfile, journal.StepSwitch, journal.StepConfirm, journal.StepRollback:
	default:
		return nil
	}
	p := &state.Pending{
		Deployment: state.Deployment{Flight: f.ID, Commit: f.Commit, Branch: f.Branch, Action: f.Action, StorePath: f.StorePath,
			Generation: f.Generation, SecretsGen: f.Secrets, Result: "pending", Time: f.Started},
		Previous: f.Previous, PreviousSystem: f.PreviousSystem,
		Activated: f.Step == journal.StepConfirm,
	}
	if rem, ok := d.Clock.Remaining(f.ConfirmBy); ok {
		p.Deadline = d.now().Add(rem)
	}
	return p
}

// FromState builds the status shown when the daemon is not running; open
// is the deployment its journal left open, if any.
func FromState(hostname, output string, st *state.State, open *journal.Flight) status.Status {
	s := status.Status{Hostname: hostname, FlakeOutput: output, State: status.Idle, Deployed: st.Deployed,
		Pending: st.Pending, Failure: st.LastError, LastError: describe(st.LastError), Suspended: st.Suspended,
		Refused: st.Bad, Drift: st.Drift, Interrupted: st.Interrupted}
	if main := st.Fetched; main != nil {
		s.Fetched = status.Fetched{Heads: main, Time: st.FetchedAt}
	}
	if st.LastError != nil {
		s.State = status.Failed
	}
	if a := st.Awaiting; a != nil {
		s.State = status.Waiting
		s.Waiting = &status.Wait{Commit: a.Commit, Since: a.Since,
			Message: fmt.Sprintf("was waiting for the builder's release of %s since %s", short(a.Commit), a.Since.Local().Format(timeFormat))}
	}
	if open.Open() {
		s.Flight = flightStatus(open)
		s.State = status.Recovering
	}
	if st.Suspended {
		s.State = status.Suspended
	}
	return s
}

// SetStatusExtra lets a role add its view to every status snapshot.
func (d *Daemon) SetStatusExtra(f func(*status.Status)) { d.extra = f }

// History implements localapi.Backend.
func (d *Daemon) History() []state.Deployment {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.st.History)
}

// Suspend implements localapi.Backend: fetching continues, deploying stops.
func (d *Daemon) Suspend(ctx context.Context) error {
	d.update(func(st *state.State) { st.Suspended = true })
	d.Log.Info().Msg("deployments suspended")
	d.setPhase(status.Suspended, "deployments suspended")
	return d.save()
}

// Resume implements localapi.Backend.
func (d *Daemon) Resume(ctx context.Context) error {
	d.update(func(st *state.State) { st.Suspended = false })
	d.Log.Info().Msg("deployments resumed")
	d.setPhase(status.Idle, "")
	err := d.save()
	d.Trigger()
	return err
}

// Rollback implements localapi.Backend: return to the deployment before the
// current one and never deploy the current commit again. It is a flight
// of its own, journaled like any rollback.
func (d *Daemon) Rollback(ctx context.Context) error {
	d.passLock.Lock()
	defer d.passLock.Unlock()
	if res, ok := d.recover(ctx); !ok {
		return fmt.Errorf("an interrupted deployment is still being settled: %v", res.err)
	}
	d.mu.Lock()
	cur, prev := d.st.Deployed, previousDeployment(d.st)
	id := d.st.LastFlight + 1
	d.mu.Unlock()
	if cur == nil || prev == nil {
		return errors.New("nothing to roll back to: no earlier deployment is recorded")
	}
	f := &journal.Flight{ID: id, Reason: "rollback", Commit: cur.Commit, Branch: cur.Branch, Action: d.Config.Deploy.Action,
		StorePath: cur.StorePath, Previous: prev, PreviousSystem: prev.StorePath, PreviousSecrets: prev.SecretsGen,
		PreviousGeneration: prev.Generation, Started: d.now(), FailedStep: journal.StepRollback}
	if err := d.record(f, journal.StepBegin, journal.Intent); err != nil {
		return err
	}
	d.rollback(ctx, f, fault.New(fault.Commit, errors.New("rolled back by hand")))
	if f.RollbackError != "" {
		return fmt.Errorf("rollback: %s", f.RollbackError)
	}
	return nil
}

// previousDeployment is the newest successful deployment of another
// system than the current one.
func previousDeployment(st *state.State) *state.Deployment {
	cur := st.Deployed
	for i := len(st.History) - 1; i >= 0 && cur != nil; i-- {
		h := st.History[i]
		if (h.Result == "deployed" || h.Result == "up-to-date") && h.StorePath != cur.StorePath {
			return &h
		}
	}
	return nil
}

// rebootNeeded compares the booted and the current system.
func rebootNeeded(c *config.Config) (bool, []string) {
	need, reasons, err := rebuild.NeedsReboot(c.Deploy.BootedSystem, c.Deploy.CurrentSystem)
	if err != nil {
		return false, nil
	}
	return need, reasons
}

// maybeReboot reboots when a reboot is needed, enabled and inside the window.
func (d *Daemon) maybeReboot(ctx context.Context) {
	if !d.rebootFollows() {
		return
	}
	if !d.drainBeforeReboot(ctx) {
		return
	}
	_, reasons := rebootNeeded(d.Config)
	d.Log.Warn().Strs("reasons", reasons).Msg("rebooting: kernel, initrd or modules changed")
	if out, err := exec.CommandContext(ctx, "systemctl", "reboot").CombinedOutput(); err != nil {
		d.Log.Error().Err(err).Str("output", tail(out)).Msg("rebooting")
		d.rebootFailed(ctx)
	}
}

// rebootFollows reports whether the deployment that just ended is followed
// by a reboot: the kernel, initrd or modules changed, reboots are on, and
// it is the reboot window.
func (d *Daemon) rebootFollows() bool {
	r := d.Config.Deploy.Reboot
	need, _ := rebootNeeded(d.Config)
	return r.Enable && need && inWindow(r.Window, d.now())
}

// inWindow reports whether t's wall-clock time falls in "HH:MM-HH:MM"
// (which may wrap past midnight).
func inWindow(window string, t time.Time) bool {
	from, to, ok := strings.Cut(window, "-")
	if !ok {
		return false
	}
	a, err1 := time.Parse("15:04", from)
	b, err2 := time.Parse("15:04", to)
	if err1 != nil || err2 != nil {
		return false
	}
	m := t.Hour()*60 + t.Minute()
	am, bm := a.Hour()*60+a.Minute(), b.Hour()*60+b.Minute()
	if am <= bm {
		return m >= am && m < bm
	}
	return m >= am || m < bm
}
