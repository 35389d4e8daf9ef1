package daemon

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/failpoint"
	"github.com/avalanche-fleet/avalanche/agent/internal/fault"
	"github.com/avalanche-fleet/avalanche/agent/internal/state"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
	"github.com/avalanche-fleet/avalanche/pkg/gitsync"
	"github.com/avalanche-fleet/avalanche/pkg/release"
)

// passResult is what one pass ended with.
type passResult struct {
	result string // unchanged, up-to-date, deployed, refused, failed, rolled-back, suspended, interrupted
	err    error
	class  fault.Class // of err; "" on success
	// retryIn, when set, asks for the next pass sooner than the poll
	// interval (a wait for the builder whose fallback is due).
	retryIn time.Duration
}

// target is the commit a pass wants the host to run.
type target struct {
	commit string
	branch string
	action string
	// source is local or builder; fallback is set when builder mode
	// evaluates locally because no release came in time.
	source   string
	fallback bool
}

// pass is one reconcile: fetch, verify, compare what runs with what was
// deployed, then deploy the chosen target when there is something to do.
func (d *Daemon) pass(ctx context.Context, force bool) passResult {
	heads, err := d.fetch(ctx)
	var tooLarge *gitsync.TooLargeError
	if errors.As(err, &tooLarge) {
		// The pushed commit brings more than the limits allow: its fault,
		// found before anything was inflated.
		return d.fail(ctx, "fetch", tooLarge.Commit, fault.New(fault.Commit, err))
	}
	if err != nil {
		// Every other fetch failure is retried: a network outage ends, and a
		// rotated token or deploy key gets fixed without a restart.
		return d.fail(ctx, "fetch", "", fault.New(fault.Transient, err))
	}
	// Drift first: a reboot that ended a test deployment changes what the
	// testing branch may deploy.
	repair := d.checkDrift()
	d.setPhase(status.Verifying, short(heads[d.Config.Repository.Branch]))
	failpoint.Hit("verify")
	t, err := d.choose(ctx, heads, force)
	if err != nil {
		return d.fail(ctx, "verify", t.commit, err)
	}
	d.releaseFleet(ctx, heads[d.Config.Repository.Branch], heads[release.Branch])
	d.mu.Lock()
	deployed := d.st.Deployed
	suspended := d.st.Suspended
	bad := d.st.IsBad(t.commit)
	d.mu.Unlock()
	switch {
	case deployed != nil && deployed.Commit == t.commit && !force && !repair:
		d.endWait()
		d.idle()
		return passResult{result: "unchanged"}
	case suspended:
		d.setPhase(status.Suspended, "deployments suspended; fetched "+short(t.commit))
		return passResult{result: "suspended"}
	case bad != nil && !force:
		d.endWait()
		d.setPhase(status.Failed, "refusing "+short(t.commit)+": "+bad.Reason)
		err := fmt.Errorf("commit %s is refused (%s failed: %s); push a new commit or use sync --force", short(t.commit), bad.Phase, bad.Reason)
		return passResult{result: "refused", err: err, class: fault.Commit}
	}
	if force && bad != nil {
		d.update(func(st *state.State) { st.ForgetBad(t.commit) })
	}
	reason := "commit"
	if deployed != nil && deployed.Commit == t.commit && !force {
		reason = "drift"
	}
	if held := d.gate(ctx, t, reason); held != nil {
		return *held
	}
	t, wait := d.sourceOf(ctx, t, reason, heads)
	if wait != nil {
		return *wait
	}
	return d.deploy(ctx, t, reason)
}

// fetch brings the tracked branches up to date.
func (d *Daemon) fetch(ctx context.Context) (map[string]string, error) {
	d.setPhase(status.Fetching, "")
	failpoint.Hit("fetch")
	start := d.now()
	release := d.Notify.Hold(d.Config.Repository.FetchTimeout.D())
	res, err := d.Git.Fetch(ctx)
	release()
	d.observe("fetch", err, start)
	if err != nil {
		d.countFetch("error")
		return nil, err
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
		for _, r := range res.Refused {
			d.Log.Warn().Str("commit", r.Commit).Str("branch", r.Branch).Str("phase", "fetch").Msg(r.Error())
		}
		if res.Unfiltered {
			d.Log.Info().Str("phase", "fetch").Msg("the remote does not support partial-clone filters; fetched whole history (commits, trees and files)")
		}
	}
	return res.Heads, nil
}

// choose verifies the fetched heads and picks what to deploy: the testing
// branch when it sits on top of main, main otherwise. force (sync --force)
// is the operator's way to accept a main that was rewritten on purpose.
func (d *Daemon) choose(ctx context.Context, heads map[string]string, force bool) (target, error) {
	repo := d.Config.Repository
	main := heads[repo.Branch]
	t := target{commit: main, branch: repo.Branch, action: d.Config.Deploy.Action}
	if main == "" {
		return t, fault.New(fault.Commit, fmt.Errorf("branch %q does not exist on the remote", repo.Branch))
	}
	if err := d.checkAncestry(ctx, main, force); err != nil {
		return t, err
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

// checkAncestry refuses a main that does not descend from the last main
// commit deployed, unless the operator forces it. A last commit the
// repository no longer has (recloned from a rewritten remote) is a
// rewrite like any other.
func (d *Daemon) checkAncestry(ctx context.Context, main string, force bool) error {
	d.mu.Lock()
	last := d.st.LastMain
	d.mu.Unlock()
	if last == "" || last == main {
		return nil
	}
	ok, err := d.Git.IsAncestor(ctx, last, main)
	switch {
	case errors.Is(err, gitsync.ErrUnknownCommit):
		ok = false
	case err != nil:
		return fmt.Errorf("checking ancestry of %s: %w", short(main), err)
	}
	branch := d.Config.Repository.Branch
	switch {
	case ok:
		return nil
	case force:
		d.Log.Warn().Str("commit", main).Str("phase", "verify").Str("deployed", last).
			Msg("accepting a rewritten main history (sync --force)")
		return nil
	default:
		return fault.New(fault.Commit, fmt.Errorf("%s was force-pushed: %s does not descend from the deployed %s; refusing to deploy it "+
			"(if the rewrite was on purpose: avalanche-agent sync --force)", branch, short(main), short(last)))
	}
}

// chooseTesting returns the testing target when tb contains main and is
// acceptable, else main's target.
func (d *Daemon) chooseTesting(ctx context.Context, main target, tb string) (target, error) {
	onTop, err := d.Git.IsAncestor(ctx, main.commit, tb)
	if err != nil && !errors.Is(err, gitsync.ErrUnknownCommit) {
		return main, fmt.Errorf("checking ancestry of %s: %w", short(tb), err)
	}
	d.mu.Lock()
	skip := d.st.IsBad(tb) != nil || d.st.TestUndone == tb
	d.mu.Unlock()
	if !onTop || skip {
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
		return fault.New(fault.Commit, err)
	}
	d.Log.Debug().Str("commit", commit).Str("signer", signer).Msg("signature verified")
	return nil
}

// fail records a failure outside a deployment (fetch, verify). Only a
// commit fault marks the commit; the rest is retried with backoff.
func (d *Daemon) fail(ctx context.Context, phase, commit string, err error) passResult {
	class := classify(ctx, err)
	msg := err.Error()
	d.logFailure(phase, commit, class, msg)
	if class == fault.Shutdown {
		return passResult{result: "interrupted", err: err, class: class}
	}
	d.mu.Lock()
	same := d.st.LastError != nil && d.st.LastError.Message == msg && d.st.LastError.Commit == commit
	d.setLastError(commit, phase, msg, class)
	dep := state.Deployment{Commit: commit, Result: "failed", Error: msg, Time: d.now()}
	verdict := class.Verdict() && commit != ""
	if verdict && !same {
		d.st.MarkBad(commit, phase, msg, d.now())
		d.st.Record(dep)
	}
	d.mu.Unlock()
	d.setPhase(status.Failed, d.lastErr)
	if !same {
		d.save() // an unchanged failure is not rewritten on every poll
		if verdict {
			d.postDeploy(ctx, dep, err)
		}
	}
	return passResult{result: "failed", err: err, class: class}
}

func (d *Daemon) logFailure(phase, commit string, class fault.Class, msg string) {
	ev := d.Log.Error()
	if !class.Verdict() {
		ev = d.Log.Warn()
	}
	ev.Str("phase", phase).Str("commit", commit).Str("result", "failed").Str("class", string(class)).
		Bool("transient", class.Retried()).Msg(msg)
}

// classify returns err's class; a failure while the agent stops is a
// shutdown whatever else it says.
func classify(ctx context.Context, err error) fault.Class {
	if ctx.Err() != nil {
		return fault.Shutdown
	}
	if fault.IsHostTrouble(err) {
		return fault.Host
	}
	return fault.Of(err)
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
