package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/fault"
	"github.com/avalanche-fleet/avalanche/agent/internal/journal"
	"github.com/avalanche-fleet/avalanche/agent/internal/state"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
)

// Secrets installs a system's declared secrets as a new generation and can
// return to an earlier one. Its errors are classified (package fault): a
// secret that does not decrypt is the commit's fault, a full or missing
// file system the host's.
type Secrets interface {
	// Install decrypts the secrets the built system declares and makes them
	// the current generation. On error the previous generation stays.
	Install(ctx context.Context, system string) (SecretsResult, error)
	// Restore makes an earlier generation current again. system is the
	// system being returned to: its manifest names the units to restart
	// for secrets that differ between the two generations. A generation
	// that no longer exists (a reboot emptied the RAM file system) is an
	// error wrapping fs.ErrNotExist.
	Restore(ctx context.Context, system, generation string) (SecretsResult, error)
	// Current returns the generation services read now, "" when none.
	Current() (string, error)
	// Clean removes what an interrupted install left behind.
	Clean() error
}

// SecretsResult says what an Install changed.
type SecretsResult struct {
	Generation, Previous string
	Restart, Reload      []string
}

// healthRetry is the pause between failed health rounds.
const healthRetry = 2 * time.Second

// confirmIntent sets the confirm deadline on the boot clock. A flight
// resumed in the same boot keeps what was left of its deadline (at least a
// few health rounds after a slow start); in a new boot it gets a full one.
func (d *Daemon) confirmIntent(_ context.Context, f *journal.Flight) {
	rem, ok := d.Clock.Remaining(f.ConfirmBy)
	switch {
	case !ok:
		f.ConfirmBy = d.Clock.After(d.Config.Deploy.ConfirmTimeout.D())
	case rem < 3*healthRetry:
		f.ConfirmBy = d.Clock.After(3 * healthRetry)
	}
}

// confirm waits until the host proves healthy by the deadline. A commit
// is judged only by what its switch broke: units that were fine before it
// and failed after, the configured checks, the git remote. A unit already
// failed before the switch is the host's trouble, never the commit's; a
// remote that does not answer is judged again after the rollback.
func (d *Daemon) confirm(ctx context.Context, f *journal.Flight) error {
	d.setPhase(status.Confirming, short(f.Commit))
	d.restartUnits(ctx, f.RestartUnits, f.ReloadUnits)
	d.mu.Lock()
	d.failedBefore = slices.Clone(f.FailedBefore)
	d.mu.Unlock()
	if len(f.FailedBefore) > 0 {
		d.Log.Warn().Str("commit", f.Commit).Str("phase", journal.StepConfirm).Strs("units", f.FailedBefore).
			Msg("units already failed before the switch: host trouble, not held against the commit")
	}
	rem, _ := d.Clock.Remaining(f.ConfirmBy)
	start := d.now()
	if err := d.waitHealthy(ctx, rem, f.FailedBefore); err != nil {
		if ctx.Err() != nil {
			return fault.New(fault.Shutdown, err)
		}
		return fault.New(fault.Commit, err)
	}
	d.Log.Info().Str("commit", f.Commit).Str("phase", journal.StepConfirm).Dur("durationMs", d.now().Sub(start)).Msg("healthy")
	return nil
}

// waitHealthy runs the health checks until they all pass or d runs out.
func (d *Daemon) waitHealthy(ctx context.Context, timeout time.Duration, failedBefore []string) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		d.Notify.Beat()
		err := d.healthy(ctx, failedBefore)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not healthy by the deadline: %w", err)
		case <-time.After(healthRetry):
		}
	}
}

// errRemoteDown marks a confirmation that failed because the git remote
// did not answer: the rollback asks again (remoteAnswers) before a verdict.
var errRemoteDown = errors.New("git remote unreachable")

// healthy checks that no unit failed since the switch, the git remote is
// reachable and every configured health check exits 0.
func (d *Daemon) healthy(ctx context.Context, failedBefore []string) error {
	if broken := newlyFailed(d.failedUnits(ctx), failedBefore); len(broken) > 0 {
		return fmt.Errorf("units failed after the switch: %s", strings.Join(broken, ", "))
	}
	if err := d.remoteReachable(ctx); err != nil {
		return err
	}
	for _, c := range d.Config.Deploy.HealthChecks {
		if err := runShell(ctx, c, nil); err != nil {
			return fmt.Errorf("health check %q: %w", c, err)
		}
	}
	return nil
}

func (d *Daemon) remoteReachable(ctx context.Context) error {
	if r, ok := d.Git.(interface{ Reachable(context.Context) error }); ok {
		if err := r.Reachable(ctx); err != nil {
			return fmt.Errorf("%w: %w", errRemoteDown, err)
		}
	}
	return nil
}

// remoteJudged re-classifies a rollback whose cause was a remote that did
// not answer the new system: when it does not answer the previous system
// either (asked for a few health rounds), the commit is not at fault: no
// verdict, the commit is tried again after a backoff.
func (d *Daemon) remoteJudged(ctx context.Context, f *journal.Flight, cause error) {
	if !errors.Is(cause, errRemoteDown) {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 3*healthRetry)
	defer cancel()
	for {
		d.Notify.Beat()
		if d.remoteReachable(ctx) == nil {
			return // it answers the previous system: the commit broke it
		}
		select {
		case <-ctx.Done():
			f.Class = string(fault.Transient)
			f.Cause += "; the remote does not answer the previous system either: no verdict, tried again later"
			return
		case <-time.After(healthRetry):
		}
	}
}

// restartUnits restarts and reloads units whose secrets changed.
func (d *Daemon) restartUnits(ctx context.Context, restart, reload []string) {
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	release := d.Notify.Hold(stepTimeout)
	defer release()
	for verb, units := range map[string][]string{"try-restart": restart, "try-reload-or-restart": reload} {
		if len(units) == 0 {
			continue
		}
		args := append([]string{verb}, units...)
		if out, err := exec.CommandContext(ctx, "systemctl", args...).CombinedOutput(); err != nil {
			d.Log.Warn().Err(err).Strs("units", units).Str("output", tail(out)).Msg("restarting units after a secrets change")
		}
	}
}

// postDeploy runs the configured hook with the outcome in its environment.
func (d *Daemon) postDeploy(ctx context.Context, dep state.Deployment, cause error) {
	hook := d.Config.Deploy.PostDeployHook
	if hook == "" {
		return
	}
	env := []string{"AVALANCHE_COMMIT=" + dep.Commit, "AVALANCHE_BRANCH=" + dep.Branch,
		"AVALANCHE_RESULT=" + dep.Result, "AVALANCHE_GENERATION=" + strconv.Itoa(dep.Generation),
		"AVALANCHE_STORE_PATH=" + dep.StorePath, "AVALANCHE_HOSTNAME=" + d.Config.Hostname}
	if cause != nil {
		env = append(env, "AVALANCHE_ERROR="+cause.Error())
	}
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	defer cancel()
	release := d.Notify.Hold(5 * time.Minute)
	defer release()
	if err := runShell(hctx, hook, env); err != nil {
		d.Log.Warn().Err(err).Str("commit", dep.Commit).Msg("post-deploy hook failed")
	}
}

// runShell runs c with /bin/sh -c; its error carries the stderr tail.
func runShell(ctx context.Context, c string, env []string) error {
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", c)
	cmd.Env = append(os.Environ(), env...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		if t := tail(buf.Bytes()); t != "" {
			return fmt.Errorf("%w: %s", err, t)
		}
		return err
	}
	return nil
}

// tail returns the last few lines of out, trimmed.
func tail(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, "\n")
}
