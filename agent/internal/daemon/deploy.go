package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/state"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild"
)

// activateTimeout bounds one run of switch-to-configuration.
const activateTimeout = 30 * time.Minute

// deploy turns the host into t: evaluate, build, install secrets, activate
// and confirm. Any failure before activation leaves the host untouched.
func (d *Daemon) deploy(ctx context.Context, t target) passResult {
	start := d.now()
	log := d.Log.With().Str("commit", t.commit).Str("branch", t.branch).Logger()
	ref := rebuild.FlakeRef(d.Config.RepoDir(), t.branch, t.commit)
	log.Info().Str("phase", "evaluate").Str("action", t.action).
		Str("equivalent", rebuild.NixosRebuildCommand(t.action, ref, d.Config.FlakeOutput)).Msg("deploying")

	current := resolve(d.Config.Deploy.CurrentSystem)
	out, running, err := d.build(ctx, t, ref, current)
	if err != nil {
		return d.fail(ctx, d.phaseOf(err), t.commit, err)
	}
	if running {
		return d.upToDate(t, out, start)
	}
	var sec SecretsResult
	if d.Secrets != nil {
		d.setPhase(status.Activating, "installing secrets for "+short(t.commit))
		s := d.now()
		sec, err = d.Secrets.Install(ctx, out)
		d.observe("secrets", err, s)
		if err != nil {
			return d.fail(ctx, "secrets", t.commit, fmt.Errorf("%w: %w", err, errStalled))
		}
	}
	p := d.pending(t, out, current, sec)
	if err := d.activate(ctx, p, out, t.action); err != nil {
		return d.rollback(ctx, p, "activate", err)
	}
	return d.confirm(ctx, p, sec)
}

// build evaluates and, unless the result is what runs (current) and the
// action switches to it, builds. running reports that nothing was built.
func (d *Daemon) build(ctx context.Context, t target, ref, current string) (out string, running bool, err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	select {
	case <-d.poke: // triggers before this build began are not news
	default:
	}
	go d.watchNewer(ctx, cancel, t)

	d.setPhase(status.Evaluating, short(t.commit))
	s := d.now()
	evalCtx, cancelEval := context.WithTimeout(ctx, d.Config.Deploy.EvalTimeout.D())
	ev, err := d.Nix.Evaluate(evalCtx, ref, d.Config.FlakeOutput)
	cancelEval()
	d.observe("evaluate", err, s)
	if err != nil {
		return "", false, d.classify(ctx, "evaluating", err)
	}
	if ev.OutPath == current && t.action != "boot" {
		d.observeSkip("build")
		return ev.OutPath, true, nil
	}
	d.setPhase(status.Building, short(t.commit)+" → "+ev.OutPath)
	s = d.now()
	root := filepath.Join(d.gcRootDir(), "system-"+strconv.FormatInt(s.Unix(), 10)+"-"+short(t.commit))
	buildCtx, cancelBuild := context.WithTimeout(ctx, d.Config.Deploy.BuildTimeout.D())
	out, err = d.Nix.Build(buildCtx, ev, root)
	cancelBuild()
	d.observe("build", err, s)
	if err != nil {
		return "", false, d.classify(ctx, "building", err)
	}
	if err := rebuild.PruneGCRoots(d.gcRootDir(), d.Config.Deploy.KeepGCRoots); err != nil {
		d.Log.Warn().Err(err).Msg("pruning GC roots")
	}
	d.Log.Info().Str("commit", t.commit).Str("phase", "build").Str("storePath", out).
		Dur("durationMs", d.now().Sub(s)).Msg("built")
	return out, false, nil
}

// errSuperseded cancels a build when a newer commit arrived.
var errSuperseded = errors.New("superseded by a newer commit")

// classify wraps an eval/build error: a newer commit's cancellation and
// transient nix trouble are retried; anything else belongs to the commit.
func (d *Daemon) classify(ctx context.Context, what string, err error) error {
	if cause := context.Cause(ctx); errors.Is(cause, errSuperseded) {
		return fmt.Errorf("%s: %w", what, cause)
	}
	// rebuild's errors already say "evaluating <output>" or "building <drv>".
	if ctx.Err() != nil || rebuild.IsTransient(err) {
		return err
	}
	return fmt.Errorf("%w: %w", err, errStalled)
}

func (d *Daemon) phaseOf(err error) string {
	switch {
	case errors.Is(err, rebuild.ErrEval):
		return "evaluate"
	case errors.Is(err, rebuild.ErrBuild):
		return "build"
	}
	return "build"
}

// watchNewer polls the remote while a long eval or build runs and cancels
// it when the target branch moved on.
func (d *Daemon) watchNewer(ctx context.Context, cancel context.CancelCauseFunc, t target) {
	interval := d.Config.PollInterval.D()
	timer := time.NewTimer(interval)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-d.poke:
		}
		res, err := d.Git.Fetch(ctx)
		if err == nil && res.Heads[t.branch] != "" && res.Heads[t.branch] != t.commit {
			d.Log.Info().Str("commit", t.commit).Str("newer", res.Heads[t.branch]).Msg("a newer commit arrived; cancelling")
			d.Trigger()
			cancel(errSuperseded)
			return
		}
		timer.Reset(interval)
	}
}

func (d *Daemon) gcRootDir() string { return filepath.Join(d.Config.StateDir, "gcroots") }

// upToDate records that the commit's system is what runs already.
func (d *Daemon) upToDate(t target, out string, start time.Time) passResult {
	gen, _, _ := rebuild.ProfileGeneration(d.Config.Deploy.Profile)
	dep := state.Deployment{Commit: t.commit, Branch: t.branch, Action: t.action, StorePath: out, Generation: gen,
		Result: "up-to-date", Time: d.now(), Duration: d.now().Sub(start)}
	d.mu.Lock()
	if d.st.Deployed != nil {
		dep.SecretsGen = d.st.Deployed.SecretsGen
	}
	d.st.Deployed = &dep
	if t.branch == d.Config.Repository.Branch {
		d.st.LastMain = t.commit
	}
	d.st.LastError = nil
	d.lastErr = ""
	d.st.Record(dep)
	d.mu.Unlock()
	d.save()
	d.Log.Info().Str("commit", t.commit).Str("phase", "evaluate").Str("storePath", out).
		Str("result", "up-to-date").Msg("system already up to date; nothing to build or switch")
	d.setPhase(status.Idle, "up to date at "+short(t.commit))
	return passResult{result: "up-to-date"}
}

// pending writes the record that lets a restarted agent finish the job.
func (d *Daemon) pending(t target, out, current string, sec SecretsResult) *state.Pending {
	d.mu.Lock()
	p := &state.Pending{
		Deployment: state.Deployment{Commit: t.commit, Branch: t.branch, Action: t.action,
			StorePath: out, SecretsGen: sec.Generation, Result: "pending", Time: d.now()},
		Previous:       d.st.Deployed,
		PreviousSystem: current,
		Deadline:       d.now().Add(activateTimeout + d.Config.Deploy.ConfirmTimeout.D()),
	}
	if sec.Previous != "" {
		// Also without a recorded deployment: the generation installed for
		// the running system at start-up is what a rollback returns to.
		var prev state.Deployment
		if p.Previous != nil {
			prev = *p.Previous
		}
		prev.SecretsGen = sec.Previous
		p.Previous = &prev
	}
	d.st.Pending = p
	d.mu.Unlock()
	d.save()
	return p
}

// activate sets the profile and runs switch-to-configuration, the way
// nixos-rebuild does, then records that it returned.
func (d *Daemon) activate(ctx context.Context, p *state.Pending, out, action string) error {
	d.setPhase(status.Activating, short(p.Commit)+" ("+action+")")
	s := d.now()
	actx, cancel := context.WithTimeout(ctx, activateTimeout)
	defer cancel()
	err := d.Nix.Activate(actx, out, d.activation(action, p.Commit))
	d.observe("activate", err, s)
	if err != nil {
		return err
	}
	gen, _, _ := rebuild.ProfileGeneration(d.Config.Deploy.Profile)
	d.mu.Lock()
	p.Activated = true
	p.Generation = gen
	p.Deadline = d.now().Add(d.Config.Deploy.ConfirmTimeout.D())
	d.mu.Unlock()
	d.save()
	d.Log.Info().Str("commit", p.Commit).Str("phase", "activate").Str("action", action).
		Int("generation", gen).Dur("durationMs", d.now().Sub(s)).Msg("activated")
	return nil
}

func (d *Daemon) activation(action, commit string) rebuild.Activation {
	return rebuild.Activation{
		Action:     action,
		Profile:    d.Config.Deploy.Profile,
		SystemdRun: d.Config.Deploy.SystemdRunEnabled(),
		Unit:       "avalanche-switch-" + short(commit),
	}
}

// resolve follows a symlink chain to its final target; "" when absent.
func resolve(p string) string {
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		return ""
	}
	return r
}

// exists reports whether p exists.
func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func (d *Daemon) observeSkip(phase string) {
	if d.Hooks.Phase != nil {
		d.Hooks.Phase(phase, "skipped", 0)
	}
}

// hostTrouble reports errors that belong to the host, not to the commit:
// no room on a disk or in memory, a read-only file system. They are retried.
func hostTrouble(err error) bool {
	for _, e := range []error{syscall.ENOSPC, syscall.EDQUOT, syscall.EROFS, syscall.ENOMEM} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
