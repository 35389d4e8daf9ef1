package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/boot"
	"github.com/avalanche-fleet/avalanche/agent/internal/failpoint"
	"github.com/avalanche-fleet/avalanche/agent/internal/fault"
	"github.com/avalanche-fleet/avalanche/agent/internal/journal"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild"
)

// rollback returns the host to the system and secrets that ran before f,
// as a journaled step: a crash in the middle of it is finished by the next
// start, never mistaken for a success. The commit is condemned only when
// cause is its own fault.
func (d *Daemon) rollback(ctx context.Context, f *journal.Flight, cause error) passResult {
	if f.Cause == "" {
		f.Cause, f.Class = cause.Error(), string(classify(ctx, cause))
	}
	if f.RollbackUnit == "" {
		f.RollbackUnit = fmt.Sprintf("avalanche-rollback-%d", f.ID)
	}
	f.RollbackError = ""
	// A rollback switch a crash left running keeps the deadline it was
	// given; the switch this rollback runs gets one of its own.
	orphanBy := f.RollbackBy
	f.RollbackBy = d.rollbackDeadline(f.SwitchBy, orphanBy)
	if err := d.record(f, journal.StepRollback, journal.Intent); err != nil {
		// Rolling back is still the safest thing to do.
		d.Log.Error().Err(err).Uint64("flight", f.ID).Msg("journaling the rollback")
	}
	d.setPhase(status.RollingBack, short(f.Commit)+": "+f.Cause)
	failpoint.Hit("rollback")
	// A stop does not cut a rollback short: the host would be left
	// between two systems. systemd's stop timeout bounds it.
	err := d.undo(context.WithoutCancel(ctx), f, orphanBy)
	if err == nil {
		err = d.syncActivation(ctx, f) // the previous generation, durable before done
	}
	event := journal.Done
	if err != nil {
		f.RollbackError, event = err.Error(), journal.Failed
	} else {
		d.remoteJudged(ctx, f, cause)
	}
	if err := d.record(f, journal.StepRollback, event); err != nil {
		d.Log.Error().Err(err).Uint64("flight", f.ID).Msg("journaling the rollback")
	}
	return d.end(ctx, f, resultRolledBack, cause)
}

// rollbackDeadline is when the rollback's own switch must have ended:
// deploy.switchTimeout after it starts, which is once the switches it
// waits for have ended, at the latest by their deadlines (this boot's).
func (d *Daemon) rollbackDeadline(waits ...boot.Instant) boot.Instant {
	start := d.Clock.Now()
	for _, by := range waits {
		if d.Clock.SameBoot(by) && by.Uptime > start.Uptime {
			start.Uptime = by.Uptime
		}
	}
	start.Uptime += d.Config.Deploy.SwitchTimeout.D()
	return start
}

// undo waits for f's switch to end (never two activations at once), then
// restores the previous secrets and activates the previous system.
// orphanBy is the deadline of a rollback switch a crash left running.
func (d *Daemon) undo(ctx context.Context, f *journal.Flight, orphanBy boot.Instant) error {
	// The forward switch, and a rollback's own switch that a crash left
	// running, each against its own deadline: both must end before this
	// rollback switches.
	for _, u := range []struct {
		name string
		by   boot.Instant
	}{{f.Unit, f.SwitchBy}, {f.RollbackUnit, orphanBy}} {
		if err := d.awaitUnit(ctx, u.name, u.by); err != nil {
			d.Log.Warn().Err(err).Str("unit", u.name).Msg("stopping a switch before rolling back")
		}
	}
	sec, secErr := d.undoSecrets(ctx, f)
	if f.PreviousSystem == "" {
		return errors.Join(secErr, errors.New("no previous system is known"))
	}
	release := d.Notify.Hold(d.Config.Deploy.SwitchTimeout.D())
	err := d.Nix.Activate(ctx, f.PreviousSystem, d.activation(f, f.RollbackUnit))
	release()
	d.restartUnits(ctx, sec.Restart, sec.Reload)
	return errors.Join(secErr, err)
}

// awaitUnit waits while the transient unit of a switch still runs: it
// survives the agent's restart (that is its purpose), and judging or
// rolling back under it would run two switches at once. A unit past its
// deadline is stopped, and that counts as the switch failing.
func (d *Daemon) awaitUnit(ctx context.Context, unit string, by boot.Instant) error {
	if unit == "" || !d.Config.Deploy.SystemdRunEnabled() {
		return nil
	}
	for rebuild.UnitRunning(ctx, unit) {
		rem, ok := d.Clock.Remaining(by)
		if !ok {
			rem = d.Config.Deploy.SwitchTimeout.D()
		}
		if rem <= 0 {
			if err := rebuild.StopUnit(ctx, unit); err != nil {
				return err
			}
			return fault.New(fault.Commit, fmt.Errorf("%s ran longer than deploy.switchTimeout (%s) and was stopped", unit, d.Config.Deploy.SwitchTimeout.D()))
		}
		d.setPhase(status.Activating, "waiting for "+unit+" to finish")
		select {
		case <-ctx.Done():
			return fault.New(fault.Shutdown, ctx.Err())
		case <-time.After(time.Second):
		}
	}
	return nil
}

// undoSecrets makes the generation that was current before f current
// again, reinstalling the previous system's secrets when that generation
// is gone. It runs before the previous system is activated, so services
// that activation starts read the secrets they were built for.
func (d *Daemon) undoSecrets(ctx context.Context, f *journal.Flight) (SecretsResult, error) {
	if d.Secrets == nil {
		return SecretsResult{}, nil
	}
	if cur, _ := d.Secrets.Current(); cur == f.PreviousSecrets && cur != "" {
		return SecretsResult{}, nil
	}
	return d.restoreSecrets(ctx, f.PreviousSystem, f.PreviousSecrets)
}

// restoreSecrets makes generation current for system, or installs
// system's secrets afresh when that generation no longer exists.
func (d *Daemon) restoreSecrets(ctx context.Context, system, generation string) (SecretsResult, error) {
	if generation != "" {
		r, err := d.Secrets.Restore(ctx, system, generation)
		if err == nil || !errors.Is(err, fs.ErrNotExist) {
			if err != nil {
				err = fmt.Errorf("restoring secrets generation %s: %w", generation, err)
			}
			return r, err
		}
	}
	if system == "" {
		return SecretsResult{}, nil
	}
	r, err := d.Secrets.Install(ctx, system)
	if err != nil {
		return r, fmt.Errorf("reinstalling the secrets of %s: %w", system, err)
	}
	return r, nil
}

// undoProfile points the profile back at the generation before f when the
// profile step changed it.
func (d *Daemon) undoProfile(ctx context.Context, f *journal.Flight) {
	if f.Action == "test" || f.PreviousGeneration == 0 {
		return
	}
	if _, target, err := rebuild.ProfileGeneration(d.Config.Deploy.Profile); err != nil || target != f.StorePath {
		return
	}
	if err := d.Nix.SwitchGeneration(context.WithoutCancel(ctx), d.Config.Deploy.Profile, f.PreviousGeneration); err != nil {
		d.Log.Warn().Err(err).Int("generation", f.PreviousGeneration).Msg("pointing the profile back")
	}
}
