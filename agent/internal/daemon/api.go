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
		Failure:       d.st.LastError,
		NextPoll:      d.nextPoll,
		Passes:        d.passes,
		Refused:       slices.Clone(d.st.Bad),
	}
	// Copies: the pass changes the pending record in place while the
	// snapshot is being encoded outside the lock.
	if p := d.st.Pending; p != nil {
		cp := *p
		s.Pending = &cp
	}
	if dep := d.st.Deployed; dep != nil {
		cp := *dep
		s.Deployed = &cp
	}
	c := d.Config
	d.mu.Unlock()
	if s.State == "" {
		s.State = status.Idle
	}
	if s.Suspended && s.State == status.Idle {
		s.State = status.Suspended
	}
	s.RebootNeeded, s.RebootReasons = rebootNeeded(c)
	if d.extra != nil {
		d.extra(&s)
	}
	return s
}

// FromState builds the status shown when the daemon is not running.
func FromState(hostname, output string, st *state.State) status.Status {
	s := status.Status{Hostname: hostname, FlakeOutput: output, State: status.Idle, Deployed: st.Deployed,
		Pending: st.Pending, Failure: st.LastError, LastError: describe(st.LastError), Suspended: st.Suspended,
		Refused: st.Bad}
	if main := st.Fetched; main != nil {
		s.Fetched = status.Fetched{Heads: main, Time: st.FetchedAt}
	}
	if st.LastError != nil {
		s.State = status.Failed
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
// current one and never deploy the current commit again.
func (d *Daemon) Rollback(ctx context.Context) error {
	d.passLock.Lock()
	defer d.passLock.Unlock()
	d.mu.Lock()
	cur := d.st.Deployed
	var prev *state.Deployment
	for i := len(d.st.History) - 1; i >= 0; i-- {
		h := d.st.History[i]
		if (h.Result == "deployed" || h.Result == "up-to-date") && cur != nil && h.StorePath != cur.StorePath {
			prev = &h
			break
		}
	}
	d.mu.Unlock()
	if cur == nil || prev == nil {
		return errors.New("nothing to roll back to: no earlier deployment is recorded")
	}
	p := &state.Pending{Deployment: *cur, Previous: prev, PreviousSystem: prev.StorePath}
	p.Action = d.Config.Deploy.Action
	r := d.rollback(ctx, p, "rollback", fmt.Errorf("rolled back by hand"))
	d.update(func(st *state.State) {
		back := *prev
		back.Time = d.now()
		st.Deployed = &back
		if back.Branch == d.Config.Repository.Branch {
			st.LastMain = back.Commit
		}
	})
	d.save()
	if r.result != "rolled-back" || strings.Contains(d.lastErr, "(rollback failed: ") {
		return fmt.Errorf("rollback: %s", d.lastErr)
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
	r := d.Config.Deploy.Reboot
	need, reasons := rebootNeeded(d.Config)
	if !r.Enable || !need || !inWindow(r.Window, d.now()) {
		return
	}
	d.Log.Warn().Strs("reasons", reasons).Msg("rebooting: kernel, initrd or modules changed")
	if out, err := exec.CommandContext(ctx, "systemctl", "reboot").CombinedOutput(); err != nil {
		d.Log.Error().Err(err).Str("output", tail(out)).Msg("rebooting")
	}
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

// generation returns the system profile's generation number, 0 if unknown.
func (d *Daemon) generation() int {
	g, _, _ := rebuild.ProfileGeneration(d.Config.Deploy.Profile)
	return g
}
