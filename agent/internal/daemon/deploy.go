package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/builder"
	"github.com/avalanche-fleet/avalanche/agent/internal/config"
	"github.com/avalanche-fleet/avalanche/agent/internal/failpoint"
	"github.com/avalanche-fleet/avalanche/agent/internal/fault"
	"github.com/avalanche-fleet/avalanche/agent/internal/journal"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
	"github.com/avalanche-fleet/avalanche/pkg/gitsync"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild"
)

// step is one journaled step of a flight. intent, when set, fills in what
// the step's intent record must carry before its side effect starts.
type step struct {
	name   string
	intent func(ctx context.Context, f *journal.Flight)
	run    func(ctx context.Context, f *journal.Flight) error
}

// stepTimeout bounds the steps that have no timeout of their own (secrets,
// profile, unit restarts, the post-deploy hook), so that a hung one stops
// the watchdog's pings instead of holding them forever.
const stepTimeout = 10 * time.Minute

// errUpToDate ends a flight early: the target is what runs.
var errUpToDate = errors.New("up to date")

// steps are a deployment's steps, in order. With a disruption budget
// (rollout.group), the lease is taken after the build, before anything on
// the host changes: hosts build at once and activate in turn.
func (d *Daemon) steps() []step {
	var lease []step
	if d.Lease != nil {
		lease = []step{{name: journal.StepLease, intent: d.leaseIntent, run: d.takeLease}}
	}
	return slices.Concat([]step{
		{name: journal.StepEvaluate, run: thenDurable(d.evaluate, d.syncEvaluation)},
		{name: journal.StepBuild, run: thenDurable(d.build, d.syncClosure)},
	}, lease, []step{
		{name: journal.StepSecrets, run: d.installSecrets},
		{name: journal.StepDrain, run: d.drainStep},
		{name: journal.StepProfile, run: d.setProfile},
		{name: journal.StepSwitch, intent: d.switchIntent, run: thenDurable(d.switchTo, d.syncActivation)},
		{name: journal.StepConfirm, intent: d.confirmIntent, run: d.confirm},
	})
}

// stepsFrom returns the steps from the one named on.
func (d *Daemon) stepsFrom(name string) []step {
	all := d.steps()
	for i, s := range all {
		if s.name == name {
			return all[i:]
		}
	}
	return nil
}

// deploy turns the host into t: a new flight through every step.
func (d *Daemon) deploy(ctx context.Context, t target, reason string) passResult {
	f, err := d.begin(t, reason)
	if err != nil {
		return d.fail(ctx, "deploy", t.commit, err)
	}
	ev := d.Log.Info().Str("commit", t.commit).Str("branch", t.branch).Uint64("flight", f.ID).Str("reason", reason).
		Str("phase", journal.StepEvaluate).Str("action", t.action).Str("source", t.source).Bool("fallback", t.fallback)
	if t.source != config.SourceBuilder {
		ref := rebuild.FlakeRef(gitsync.EvalDirOf(d.Config.RepoDir()), t.branch, t.commit)
		ev = ev.Str("equivalent", rebuild.NixosRebuildCommand(t.action, ref, d.Config.FlakeOutput))
	}
	ev.Msg("deploying")
	return d.run(ctx, f, d.steps())
}

// run performs steps in order, each journaled before and after.
func (d *Daemon) run(ctx context.Context, f *journal.Flight, steps []step) passResult {
	for _, s := range steps {
		if s.intent != nil {
			s.intent(ctx, f)
		}
		if err := d.record(f, s.name, journal.Intent); err != nil {
			return d.abort(ctx, f, s.name, err)
		}
		failpoint.Hit(s.name)
		start := d.now()
		err := s.run(ctx, f)
		if errors.Is(err, errUpToDate) {
			d.observeSkip(journal.StepBuild)
			return d.end(ctx, f, resultUpToDate, nil)
		}
		if s.name != journal.StepProfile { // part of activation for metrics
			d.observe(s.name, err, start)
		}
		if err == nil {
			err = d.record(f, s.name, journal.Done)
		}
		if err != nil {
			return d.abort(ctx, f, s.name, err)
		}
	}
	return d.end(ctx, f, resultDeployed, nil)
}

// abort handles a failed step by its class and by what the step changed.
// A stop leaves the flight open for the next start to settle; a failure
// before the switch changed nothing that stays; from the switch on, the
// previous system comes back.
func (d *Daemon) abort(ctx context.Context, f *journal.Flight, name string, err error) passResult {
	class := classify(ctx, err)
	f.Cause, f.Class, f.FailedStep = err.Error(), string(class), name
	switch {
	case class == fault.Shutdown:
		d.Log.Info().Str("commit", f.Commit).Str("phase", name).Uint64("flight", f.ID).
			Msg("stopping in the middle of a deployment; the next start resumes it")
		return passResult{result: resultInterrupted, err: err, class: class}
	case class == fault.Superseded:
		return d.end(ctx, f, resultSuperseded, err)
	case name == journal.StepSwitch || name == journal.StepConfirm:
		return d.rollback(ctx, f, err)
	case name == journal.StepProfile:
		d.undoProfile(ctx, f)
		d.undoSecrets(ctx, f)
	case name == journal.StepDrain:
		d.undoSecrets(ctx, f)
	}
	return d.end(ctx, f, resultFailed, err)
}

// evaluate finds the target's store path; when it is what runs, the flight
// ends there.
func (d *Daemon) evaluate(ctx context.Context, f *journal.Flight) error {
	if f.Source == config.SourceBuilder {
		if err := d.findRelease(ctx, f); err != nil {
			return err
		}
		return d.upToDate(f)
	}
	d.setPhase(status.Evaluating, short(f.Commit))
	pctx, stop := d.preemptible(ctx, f)
	defer stop()
	timeout := d.Config.Deploy.EvalTimeout.D()
	ectx, cancel := context.WithTimeout(pctx, timeout)
	defer cancel()
	release := d.Notify.Hold(timeout)
	start := d.now()
	ref, err := d.flakeRef(pctx, f.Branch, f.Commit)
	if err != nil {
		release()
		return treeFault(ctx, pctx, err)
	}
	ev, err := d.Nix.Evaluate(ectx, ref, d.Config.FlakeOutput)
	release()
	if err != nil {
		return d.nixFault(ctx, pctx, err)
	}
	f.StorePath, f.DrvPath = ev.OutPath, ev.DrvPath
	d.Log.Info().Str("commit", f.Commit).Str("phase", journal.StepEvaluate).Str("storePath", f.StorePath).
		Dur("durationMs", d.now().Sub(start)).Msg("evaluated")
	return d.upToDate(f)
}

// upToDate ends the flight when its target is what runs and what the
// agent deployed (a commit that changes no system). A target that runs
// without having been deployed — booted after a power cut that came
// between the profile and the switch, whose recovery put the previous
// secrets back — is deployed in full: its secrets, profile and activation.
func (d *Daemon) upToDate(f *journal.Flight) error {
	cur := resolve(d.Config.Deploy.CurrentSystem)
	d.mu.Lock()
	deployed := d.st.Deployed != nil && d.st.Deployed.StorePath == cur
	d.mu.Unlock()
	if f.StorePath == cur && deployed && f.Action != "boot" {
		return errUpToDate
	}
	return nil
}

// build realises the target under a GC root named by the flight, so no
// clock decides which roots are old: built here, or in builder mode
// substituted from the fleet cache (never built). A substitution cut short
// is no verdict and starts over, as a build does.
func (d *Daemon) build(ctx context.Context, f *journal.Flight) error {
	substitute := f.Source == config.SourceBuilder
	verb := "built"
	if substitute {
		verb = "substituted"
		d.setPhase(status.Building, "substituting "+f.StorePath+" from "+d.Config.Deploy.Cache.URL)
	} else {
		d.setPhase(status.Building, short(f.Commit)+" → "+f.StorePath)
	}
	pctx, stop := d.preemptible(ctx, f)
	defer stop()
	timeout := d.Config.Deploy.BuildTimeout.D()
	bctx, cancel := context.WithTimeout(pctx, timeout)
	defer cancel()
	f.GCRoot = filepath.Join(d.gcRootDir(), rebuild.GCRootName(f.ID, short(f.Commit)))
	release := d.Notify.Hold(timeout)
	start := d.now()
	var out string
	var err error
	if substitute {
		out, err = d.substitute(bctx, f)
	} else {
		out, err = d.Nix.Build(bctx, rebuild.Evaluation{DrvPath: f.DrvPath, OutPath: f.StorePath}, f.GCRoot)
	}
	release()
	if err != nil && substitute && errors.Is(bctx.Err(), context.DeadlineExceeded) && pctx.Err() == nil {
		// A slow download is not the commit's fault.
		err = fault.New(fault.Transient, fmt.Errorf("substituting took longer than deploy.buildTimeout (%s): %w", timeout, err))
	}
	if err != nil {
		return d.nixFault(ctx, pctx, err)
	}
	f.StorePath = out
	d.pruneGCRoots()
	d.Log.Info().Str("commit", f.Commit).Str("phase", journal.StepBuild).Str("storePath", out).
		Dur("durationMs", d.now().Sub(start)).Msg(verb)
	return nil
}

// errSuperseded cancels an evaluation or build when a newer commit arrived.
var errSuperseded = errors.New("superseded by a newer commit")

// preemptible returns a context that a newer commit on f's branch cancels.
func (d *Daemon) preemptible(ctx context.Context, f *journal.Flight) (context.Context, func()) {
	pctx, cancel := context.WithCancelCause(ctx)
	select {
	case <-d.poke: // triggers before this step began are not news
	default:
	}
	go d.watchNewer(pctx, cancel, f.Branch, f.Commit)
	return pctx, func() { cancel(nil) }
}

// nixFault classifies an evaluation or build error where it arose.
func (d *Daemon) nixFault(ctx, pctx context.Context, err error) error {
	if cause := context.Cause(pctx); errors.Is(cause, errSuperseded) {
		return fault.New(fault.Superseded, fmt.Errorf("%w: %w", cause, err))
	}
	var ce *rebuild.CommandError
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return fault.New(fault.Shutdown, err)
	case builder.IsCommitFault(err): // the trusted release says the commit does not build here
		return fault.New(fault.Commit, err)
	case fault.IsHostTrouble(err): // out of memory (rebuild.ErrOutOfMemory), disk full
		return fault.New(fault.Host, err)
	case rebuild.IsTransient(err):
		return fault.New(fault.Transient, err)
	case errors.As(err, &ce) && errors.As(err, &exit) && exit.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL:
		// Killed by nobody the agent knows: the kernel's OOM killer.
		return fault.New(fault.Host, fmt.Errorf("%w (killed: out of memory?)", err))
	case errors.Is(err, rebuild.ErrEval), errors.Is(err, rebuild.ErrBuild), errors.Is(err, context.DeadlineExceeded):
		return fault.New(fault.Commit, err)
	}
	return fault.New(fault.Transient, err)
}

// watchNewer polls the remote while a long eval or build runs and cancels
// it when the target branch moved on.
func (d *Daemon) watchNewer(ctx context.Context, cancel context.CancelCauseFunc, branch, commit string) {
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
		if err == nil && res.Heads[branch] != "" && res.Heads[branch] != commit {
			d.Log.Info().Str("commit", commit).Str("newer", res.Heads[branch]).Msg("a newer commit arrived; cancelling")
			d.Trigger()
			cancel(errSuperseded)
			return
		}
		timer.Reset(interval)
	}
}

// installSecrets decrypts the target's secrets into a new generation and
// makes it current. The secrets implementation classifies its failures.
func (d *Daemon) installSecrets(ctx context.Context, f *journal.Flight) error {
	if d.Secrets == nil {
		return nil
	}
	d.setPhase(status.Activating, "installing secrets for "+short(f.Commit))
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	release := d.Notify.Hold(stepTimeout)
	defer release()
	r, err := d.Secrets.Install(ctx, f.StorePath)
	if err != nil {
		return err
	}
	f.Secrets, f.RestartUnits, f.ReloadUnits = r.Generation, r.Restart, r.Reload
	return nil
}

// setProfile points the system profile at the target (not for test, which
// leaves the profile alone). Its failure is never the commit's.
func (d *Daemon) setProfile(ctx context.Context, f *journal.Flight) error {
	if f.Action == "test" {
		return nil
	}
	d.setPhase(status.Activating, short(f.Commit)+" (profile)")
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	release := d.Notify.Hold(stepTimeout)
	defer release()
	if err := d.Nix.SetProfile(ctx, d.Config.Deploy.Profile, f.StorePath); err != nil {
		if fault.IsHostTrouble(err) {
			return fault.New(fault.Host, err)
		}
		return fault.New(fault.Transient, err)
	}
	f.Generation = d.generation()
	return nil
}

// switchIntent names the switch unit and its deadline before it starts,
// and notes the units already failed (confirm holds only new failures
// against the commit).
func (d *Daemon) switchIntent(ctx context.Context, f *journal.Flight) {
	f.Unit = fmt.Sprintf("avalanche-switch-%d", f.ID)
	f.SwitchBy = d.Clock.After(d.Config.Deploy.SwitchTimeout.D())
	f.FailedBefore = d.failedUnits(ctx)
}

// switchTo runs switch-to-configuration. It is not cancelled by a stop: a
// switch cut short leaves a half-switched host, so the agent lets it end
// (within deploy.switchTimeout) and the next start confirms it.
func (d *Daemon) switchTo(ctx context.Context, f *journal.Flight) error {
	d.setPhase(status.Activating, short(f.Commit)+" ("+f.Action+")")
	timeout := d.Config.Deploy.SwitchTimeout.D()
	release := d.Notify.Hold(timeout)
	defer release()
	a := d.activation(f, f.Unit)
	a.ProfileSet = true
	os.Remove(d.resultFile(f.Unit)) // a unit of this name from before a reset
	if a.SystemdRun {
		d.Log.Info().Str("commit", f.Commit).Str("phase", journal.StepSwitch).Str("unit", f.Unit).
			Msg("switching in " + f.Unit + " (its output: journalctl -u " + f.Unit + ")")
	}
	start := d.now()
	if err := d.Nix.Activate(context.WithoutCancel(ctx), f.StorePath, a); err != nil {
		if rem, _ := d.Clock.Remaining(f.SwitchBy); rem <= 0 {
			err = fmt.Errorf("switch-to-configuration ran longer than deploy.switchTimeout (%s): %w", timeout, err)
		}
		return fault.New(fault.Commit, err)
	}
	d.Log.Info().Str("commit", f.Commit).Str("phase", journal.StepSwitch).Str("action", f.Action).Str("unit", f.Unit).
		Int("generation", f.Generation).Dur("durationMs", d.now().Sub(start)).Msg("activated")
	return d.handOver(ctx, f)
}

// activation says how to switch for f, in unit; the unit's journal
// entries carry f's commit, like the agent's own.
func (d *Daemon) activation(f *journal.Flight, unit string) rebuild.Activation {
	return rebuild.Activation{
		LogFields:  []string{"AVALANCHE_COMMIT=" + f.Commit, "AVALANCHE_UNIT=" + unit},
		Action:     f.Action,
		Profile:    d.Config.Deploy.Profile,
		SystemdRun: d.Config.Deploy.SystemdRunEnabled(),
		Unit:       unit,
		Timeout:    d.Config.Deploy.SwitchTimeout.D(),
		StopPost:   d.stopPost(unit),
	}
}

// generation returns the system profile's generation number, 0 if unknown.
func (d *Daemon) generation() int {
	g, _, _ := rebuild.ProfileGeneration(d.Config.Deploy.Profile)
	return g
}

func (d *Daemon) observeSkip(phase string) {
	if d.Hooks.Phase != nil {
		d.Hooks.Phase(phase, "skipped", 0)
	}
}
