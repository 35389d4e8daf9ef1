package daemon

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/boot"
	"github.com/avalanche-fleet/avalanche/agent/internal/builder"
	"github.com/avalanche-fleet/avalanche/agent/internal/config"
	"github.com/avalanche-fleet/avalanche/agent/internal/fault"
	"github.com/avalanche-fleet/avalanche/agent/internal/journal"
	"github.com/avalanche-fleet/avalanche/agent/internal/state"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild"
	"github.com/avalanche-fleet/avalanche/pkg/release"
)

// timeFormat is how times appear in status messages.
const timeFormat = "2006-01-02 15:04:05 MST"

// Source is the host side of builder mode (builder.Source): a commit's
// system is the one the builder's signed release names, substituted from
// the fleet cache, never evaluated here.
type Source interface {
	Resolve(ctx context.Context, commit string) (builder.Target, error)
	Realise(ctx context.Context, t builder.Target, gcRoot string, progress func(rebuild.SubstituteProgress)) (string, error)
}

// sourceOf decides where t's system comes from. On a host in builder mode
// without a release of t yet, the pass ends waiting (wait is set) rather
// than starting a flight that would wait inside a step: the next poll or
// trigger looks again, and after deploy.builderTimeout the fallback
// applies.
func (d *Daemon) sourceOf(ctx context.Context, t target, reason string, heads map[string]string) (target, *passResult) {
	t.source = config.SourceLocal
	if d.Source == nil {
		return t, nil
	}
	_, err := d.Source.Resolve(ctx, t.commit)
	switch {
	case !errors.Is(err, release.ErrNotYet) && !errors.Is(err, release.ErrUntrusted):
		// Found, refused or unreadable: the evaluate step settles it.
		d.endWait()
		t.source = config.SourceBuilder
		return t, nil
	case reason == "drift" && d.deployedLocally():
		return t, nil // re-activate what was evaluated here
	}
	// No release yet, or only releases nobody trusted pushed (anyone who
	// can push can publish one): wait for the builder's, never refuse.
	var untrusted string
	if errors.Is(err, release.ErrUntrusted) {
		untrusted = err.Error()
	}
	a := d.await(t.commit, heads[release.Branch], untrusted)
	waited, timeout := d.waited(a), d.Config.Deploy.BuilderTimeout.D()
	if waited >= timeout && d.Config.Deploy.BuilderFallback == config.FallbackEvaluate {
		d.Log.Warn().Str("commit", t.commit).Str("phase", journal.StepEvaluate).Dur("waited", waited).
			Msg("no release from the builder within deploy.builderTimeout; evaluating locally (deploy.builderFallback = evaluate)")
		t.fallback = true
		return t, nil
	}
	w := d.waitView(a)
	d.setPhase(status.Waiting, w.Message)
	res := &passResult{result: status.Waiting}
	if d.Config.Deploy.BuilderFallback == config.FallbackEvaluate {
		res.retryIn = timeout - waited // look again when the fallback is due
	}
	return t, res
}

// deployedLocally reports whether the deployed system was evaluated here.
func (d *Daemon) deployedLocally() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.st.Deployed != nil && d.st.Deployed.Release == nil
}

// await returns the wait record for commit. The wait is continuous: a
// newer commit arriving while the host waits keeps its start, so a builder
// that is down while people keep pushing still ends in the fallback. After
// a reboot the boot clock counts afresh.
func (d *Daemon) await(commit, releaseHead, untrusted string) state.Awaiting {
	d.mu.Lock()
	var a state.Awaiting
	if old := d.st.Awaiting; old != nil {
		a = *old
	}
	before := a
	now := d.Clock.Now()
	if a.Commit == "" {
		a = state.Awaiting{Since: d.now(), Boot: now, ReleaseHead: releaseHead, ReleaseMoved: now}
	}
	a.Commit, a.Untrusted = commit, untrusted
	if !d.Clock.SameBoot(a.Boot) {
		a.Boot, a.ReleaseMoved = now, now
	}
	if a.ReleaseHead != releaseHead {
		a.ReleaseHead, a.ReleaseMoved = releaseHead, now
	}
	changed := a != before
	d.st.Awaiting = &a
	d.mu.Unlock()
	if changed { // the state file is written when the wait changes, not at every poll
		d.save()
		ev := d.Log.Info().Str("commit", commit).Str("phase", journal.StepEvaluate).Time("since", a.Since)
		if untrusted != "" {
			ev = ev.Str("untrusted", untrusted)
		}
		ev.Msg("waiting for the builder's release")
	}
	return a
}

// endWait forgets the wait once the pass no longer waits.
func (d *Daemon) endWait() {
	d.mu.Lock()
	waiting := d.st.Awaiting != nil
	d.st.Awaiting = nil
	d.mu.Unlock()
	if waiting {
		d.save()
	}
}

// waited is how long this boot has waited for a; zero when a was recorded
// during another boot.
func (d *Daemon) waited(a state.Awaiting) time.Duration {
	return d.elapsed(a.Boot)
}

// elapsed is the time since i on the boot clock, zero when i was taken
// during another boot.
func (d *Daemon) elapsed(i boot.Instant) time.Duration {
	rem, ok := d.Clock.Remaining(i)
	if !ok {
		return 0
	}
	return -rem
}

// waitView is how status shows a wait, in plain words.
func (d *Daemon) waitView(a state.Awaiting) status.Wait {
	dep := d.Config.Deploy
	w := status.Wait{Commit: a.Commit, Since: a.Since, Waited: d.waited(a), Timeout: dep.BuilderTimeout.D(),
		Fallback: dep.BuilderFallback, BuilderDown: d.builderDown(a)}
	msg := fmt.Sprintf("waiting for the builder's release of %s since %s (%s)", short(a.Commit),
		a.Since.Local().Format(timeFormat), w.Waited.Round(time.Second))
	if a.Untrusted != "" {
		w.Untrusted = a.Untrusted
		msg = fmt.Sprintf("release for %s not trusted: %s; waiting for the builder's since %s (%s)", short(a.Commit),
			a.Untrusted, a.Since.Local().Format(timeFormat), w.Waited.Round(time.Second))
	}
	switch {
	case dep.BuilderFallback == config.FallbackEvaluate:
		msg += fmt.Sprintf("; evaluating locally in %s (deploy.builderTimeout %s)", (w.Timeout - w.Waited).Round(time.Second), w.Timeout)
	case w.Waited >= w.Timeout:
		msg += fmt.Sprintf("; past deploy.builderTimeout (%s), still waiting (deploy.builderFallback = wait)", w.Timeout)
	default:
		msg += fmt.Sprintf("; keeps waiting after deploy.builderTimeout %s (deploy.builderFallback = wait)", w.Timeout)
	}
	if w.BuilderDown != "" {
		msg += "; the builder looks down: " + w.BuilderDown
	}
	w.Message = msg
	return w
}

// builderDown says why the builder looks down while a host waits, "" when
// it does not: the release branch cannot be fetched, does not exist, or
// has not moved for half of deploy.builderTimeout.
func (d *Daemon) builderDown(a state.Awaiting) string {
	d.mu.Lock()
	lastErr, heads := d.st.LastError, d.fetched.Heads
	d.mu.Unlock()
	if lastErr != nil && lastErr.Phase == "fetch" && lastErr.Time.After(a.Since) {
		return "the release branch cannot be fetched: " + lastErr.Message
	}
	if _, ok := heads[release.Branch]; heads != nil && !ok {
		return "the remote has no " + release.Branch + " branch: the builder never published a release"
	}
	if still := d.elapsed(a.ReleaseMoved); still >= d.Config.Deploy.BuilderTimeout.D()/2 {
		return fmt.Sprintf("its release branch has not moved for %s", still.Round(time.Second))
	}
	return ""
}

// findRelease is the evaluate step in builder mode: the release of the exact
// commit being deployed names the target; nothing is evaluated.
func (d *Daemon) findRelease(ctx context.Context, f *journal.Flight) error {
	d.setPhase(status.Evaluating, "finding the builder's release of "+short(f.Commit))
	t, err := d.Source.Resolve(ctx, f.Commit)
	if err != nil {
		return releaseFault(ctx, err)
	}
	f.StorePath, f.DrvPath = t.OutPath, t.DrvPath
	f.Release = &state.Release{ID: t.Release, Builder: t.Builder, Signer: t.Signer, Built: t.Built}
	d.Log.Info().Str("commit", f.Commit).Str("phase", journal.StepEvaluate).Str("release", t.Release).
		Str("builder", t.Builder).Str("signer", t.Signer).Str("storePath", t.OutPath).Msg("found the builder's release")
	return nil
}

// releaseFault classifies an error of Source.Resolve where it arose.
func releaseFault(ctx context.Context, err error) error {
	switch {
	case ctx.Err() != nil:
		return fault.New(fault.Shutdown, err)
	case builder.IsCommitFault(err):
		return fault.New(fault.Commit, err)
	}
	// Not yet (gone since the pass looked) or the local repository
	// unreadable: retried.
	return fault.New(fault.Transient, err)
}

// substitute is the build step in builder mode: the target and its
// closure come from the fleet cache, signatures required, under the
// flight's GC root.
func (d *Daemon) substitute(ctx context.Context, f *journal.Flight) (string, error) {
	d.mu.Lock()
	d.subst = &status.Substitution{}
	d.mu.Unlock()
	t := builder.Target{Commit: f.Commit}
	t.OutPath, t.DrvPath = f.StorePath, f.DrvPath
	if f.Release != nil {
		t.Release, t.Builder, t.Signer, t.Built = f.Release.ID, f.Release.Builder, f.Release.Signer, f.Release.Built
	}
	return d.Source.Realise(ctx, t, f.GCRoot, d.substituted)
}

// substituted records substitution progress for status and metrics.
func (d *Daemon) substituted(p rebuild.SubstituteProgress) {
	d.mu.Lock()
	var before int64
	if d.subst != nil {
		before = d.subst.BytesDone
	}
	d.subst = &status.Substitution{Paths: p.Paths, PathsDone: p.PathsDone, Bytes: p.Bytes, BytesDone: p.BytesDone}
	d.mu.Unlock()
	if d.Hooks.Substituted != nil && p.BytesDone > before {
		d.Hooks.Substituted(p.BytesDone - before)
	}
}

// flakeRef returns the flake reference Nix evaluates commit through: the
// copy read in place through its evaluation directory, once the commit's
// whole tree is there (gitsync.Repo.EvalDir).
func (d *Daemon) flakeRef(ctx context.Context, branch, commit string) (string, error) {
	dir, err := d.Git.EvalDir(ctx, commit)
	if err != nil {
		return "", fmt.Errorf("reading the tree of %s: %w", short(commit), err)
	}
	return rebuild.FlakeRef(dir, branch, commit), nil
}

// treeFault classifies a failure to make a commit's tree readable: the
// copy, the disk or the remote, never the commit.
func treeFault(ctx, pctx context.Context, err error) error {
	switch {
	case errors.Is(context.Cause(pctx), errSuperseded):
		return fault.New(fault.Superseded, err)
	case ctx.Err() != nil:
		return fault.New(fault.Shutdown, err)
	case fault.IsHostTrouble(err):
		return fault.New(fault.Host, err)
	}
	return fault.New(fault.Transient, err)
}
