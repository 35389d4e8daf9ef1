package daemon

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/state"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
	"github.com/avalanche-fleet/avalanche/pkg/gitsync"
)

// passResult is what one pass ended with.
type passResult struct {
	result    string // unchanged, up-to-date, deployed, refused, failed, rolled-back, suspended
	err       error
	transient bool
}

// target is the commit a pass wants the host to run.
type target struct {
	commit string
	branch string
	action string
}

// pass is one reconcile: fetch, verify, then deploy the chosen target.
func (d *Daemon) pass(ctx context.Context, force bool) passResult {
	heads, changed, err := d.fetch(ctx)
	if err != nil {
		return d.fail(ctx, "fetch", "", err)
	}
	t, err := d.choose(ctx, heads, force)
	if err != nil {
		return d.fail(ctx, "verify", t.commit, err)
	}
	d.mu.Lock()
	deployed := d.st.Deployed
	suspended := d.st.Suspended
	bad := d.st.IsBad(t.commit)
	d.mu.Unlock()
	switch {
	case deployed != nil && deployed.Commit == t.commit && !force:
		d.idle()
		return passResult{result: "unchanged"}
	case suspended:
		d.setPhase(status.Suspended, "deployments suspended; fetched "+short(t.commit))
		return passResult{result: "suspended"}
	case bad != nil && !force:
		d.setPhase(status.Failed, "refusing "+short(t.commit)+": "+bad.Reason)
		return passResult{result: "refused", err: fmt.Errorf("commit %s is refused (%s failed: %s); push a new commit or use sync --force", short(t.commit), bad.Phase, bad.Reason)}
	}
	if force && bad != nil {
		d.update(func(st *state.State) { st.ForgetBad(t.commit) })
	}
	_ = changed
	return d.deploy(ctx, t)
}

// fetch brings the tracked branches up to date.
func (d *Daemon) fetch(ctx context.Context) (map[string]string, bool, error) {
	d.setPhase(status.Fetching, "")
	start := d.now()
	res, err := d.Git.Fetch(ctx)
	d.observe("fetch", err, start)
	if err != nil {
		d.countFetch("error")
		return nil, false, err
	}
	result := "unchanged"
	if res.Changed {
		result = "updated"
	}
	d.countFetch(result)
	main := res.Heads[d.Config.Repository.Branch]
	d.mu.Lock()
	d.fetched = status.Fetched{Commit: main, Branch: d.Config.Repository.Branch, Time: d.now(), Heads: res.Heads}
	d.mu.Unlock()
	if res.Changed || res.Recloned {
		d.Log.Info().Str("commit", main).Str("phase", "fetch").Bool("recloned", res.Recloned).
			Dur("durationMs", d.now().Sub(start)).Msg("fetched new commits")
	}
	return res.Heads, res.Changed, nil
}

// choose verifies the fetched heads and picks what to deploy: the testing
// branch when it sits on top of main, main otherwise. force (sync --force)
// is the operator's way to accept a main that was rewritten on purpose.
func (d *Daemon) choose(ctx context.Context, heads map[string]string, force bool) (target, error) {
	repo := d.Config.Repository
	main := heads[repo.Branch]
	t := target{commit: main, branch: repo.Branch, action: d.Config.Deploy.Action}
	if main == "" {
		return t, fmt.Errorf("branch %q does not exist on the remote: %w", repo.Branch, errStalled)
	}
	d.mu.Lock()
	last := d.st.LastMain
	d.mu.Unlock()
	if last != "" && last != main {
		ok, err := d.Git.IsAncestor(ctx, last, main)
		if err != nil {
			return t, fmt.Errorf("checking ancestry of %s: %w", short(main), err)
		}
		switch {
		case !ok && force:
			d.Log.Warn().Str("commit", main).Str("phase", "verify").Str("deployed", last).
				Msg("accepting a rewritten main history (sync --force)")
		case !ok:
			return t, fmt.Errorf("%s was force-pushed: %s does not descend from the deployed %s; refusing to deploy it "+
				"(if the rewrite was on purpose: avalanche-agent sync --force): %w", repo.Branch, short(main), short(last), errStalled)
		}
	}
	if err := d.verifySignature(ctx, main); err != nil {
		return t, err
	}
	tb, ok := heads[repo.TestingBranch]
	if !ok || tb == main {
		return t, nil
	}
	return d.chooseTesting(ctx, t, tb)
}

// chooseTesting returns the testing target when tb contains main and is
// acceptable, else main's target.
func (d *Daemon) chooseTesting(ctx context.Context, main target, tb string) (target, error) {
	onTop, err := d.Git.IsAncestor(ctx, main.commit, tb)
	if err != nil {
		return main, fmt.Errorf("checking ancestry of %s: %w", short(tb), err)
	}
	d.mu.Lock()
	bad := d.st.IsBad(tb) != nil
	d.mu.Unlock()
	if !onTop || bad {
		if !onTop {
			d.Log.Warn().Str("commit", tb).Str("branch", d.Config.Repository.TestingBranch).
				Msg("testing branch does not contain main's commit; deploying main")
		}
		return main, nil
	}
	if err := d.verifySignature(ctx, tb); err != nil {
		d.Log.Warn().Err(err).Str("commit", tb).Msg("testing branch refused; deploying main")
		return main, nil
	}
	return target{commit: tb, branch: d.Config.Repository.TestingBranch, action: "test"}, nil
}

func (d *Daemon) verifySignature(ctx context.Context, commit string) error {
	s := gitsync.Signers{AllowedSignersFile: d.Config.Verify.AllowedSignersFile, GPGKeyFiles: d.Config.Verify.GPGKeyFiles}
	if !s.Enabled() {
		return nil
	}
	signer, err := d.Git.VerifyCommit(ctx, commit, s)
	if err != nil {
		if gitsync.IsTransient(err) {
			return err
		}
		return fmt.Errorf("%w: %w", err, errStalled)
	}
	d.Log.Debug().Str("commit", commit).Str("signer", signer).Msg("signature verified")
	return nil
}

// fail records a failed phase. Stalled failures belong to the commit and
// mark it bad; others are transient and retried with backoff.
func (d *Daemon) fail(ctx context.Context, phase, commit string, err error) passResult {
	// Fetch failures are all retried with backoff: a network outage ends,
	// and a rotated token or deploy key gets fixed without a restart. A full
	// or read-only disk is the host's trouble in any phase, not the commit's.
	transient := phase == "fetch" || hostTrouble(err) || (!errors.Is(err, errStalled) && ctx.Err() == nil)
	msg := cleanErr(err)
	f := &state.Failure{Commit: commit, Phase: phase, Message: msg, Time: d.now(), Transient: transient}
	ev := d.Log.Error()
	if transient {
		ev = d.Log.Warn()
	}
	ev.Str("phase", phase).Str("commit", commit).Str("result", "failed").Bool("transient", transient).Msg(msg)
	d.mu.Lock()
	same := d.st.LastError != nil && d.st.LastError.Message == msg && d.st.LastError.Commit == commit
	d.st.LastError = f
	commitFailed := !transient && commit != ""
	dep := state.Deployment{Commit: commit, Result: "failed", Error: msg, Time: d.now()}
	if commitFailed && !same {
		d.st.MarkBad(commit, phase, msg, d.now())
		d.st.Record(dep)
	}
	d.lastErr = describe(f)
	d.mu.Unlock()
	d.setPhase(status.Failed, d.lastErr)
	if !same {
		d.save() // an unchanged failure is not rewritten on every poll
		if commitFailed {
			d.postDeploy(ctx, dep, err)
		}
	}
	return passResult{result: "failed", err: err, transient: transient}
}

// idle marks the end of a pass with nothing to do.
func (d *Daemon) idle() {
	d.mu.Lock()
	if d.st.LastError != nil && d.st.LastError.Phase == "fetch" {
		d.st.LastError = nil
		d.lastErr = ""
		d.mu.Unlock()
		d.save()
	} else {
		d.mu.Unlock()
	}
	d.setPhase(status.Idle, "")
}

// cleanErr strips the internal stalled marker from an error's text.
func cleanErr(err error) string {
	s := err.Error()
	const suffix = ": " + "stalled"
	for len(s) >= len(suffix) && s[len(s)-len(suffix):] == suffix {
		s = s[:len(s)-len(suffix)]
	}
	return s
}

func (d *Daemon) observe(phase string, err error, start time.Time) {
	if d.Hooks.Phase == nil {
		return
	}
	result := "ok"
	if err != nil {
		result = "error"
	}
	d.Hooks.Phase(phase, result, d.now().Sub(start))
}

func (d *Daemon) countFetch(result string) {
	if d.Hooks.Fetch != nil {
		d.Hooks.Fetch(result)
	}
}
