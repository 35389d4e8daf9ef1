package daemon

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/state"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
)

// Secrets installs a system's declared secrets as a new generation and can
// return to an earlier one.
type Secrets interface {
	// Install decrypts the secrets the built system declares and makes them
	// the current generation. On error the previous generation stays.
	Install(ctx context.Context, system string) (SecretsResult, error)
	// Restore makes an earlier generation current again. system is the
	// system being returned to: its manifest names the units to restart
	// for secrets that differ between the two generations.
	Restore(ctx context.Context, system, generation string) (SecretsResult, error)
}

// SecretsResult says what an Install changed.
type SecretsResult struct {
	Generation, Previous string
	Restart, Reload      []string
}

// healthRetry is the pause between failed health rounds.
const healthRetry = 2 * time.Second

// confirm waits until the host proves healthy, or rolls back at the deadline.
func (d *Daemon) confirm(ctx context.Context, p *state.Pending, sec SecretsResult) passResult {
	d.setPhase(status.Confirming, short(p.Commit))
	s := d.now()
	d.restartUnits(ctx, sec)
	err := d.waitHealthy(ctx, p.Deadline)
	d.observe("confirm", err, s)
	if err != nil {
		if ctx.Err() != nil {
			// Shutting down: the next agent resumes from the pending record.
			return passResult{result: "interrupted", err: ctx.Err(), transient: true}
		}
		return d.rollback(ctx, p, "confirm", err)
	}
	dep := p.Deployment
	dep.Result = "deployed"
	dep.Duration = d.now().Sub(p.Time)
	d.mu.Lock()
	d.st.Deployed = &dep
	d.st.Pending = nil
	if dep.Branch == d.Config.Repository.Branch {
		d.st.LastMain = dep.Commit
	}
	d.st.LastError = nil
	d.lastErr = ""
	d.st.Record(dep)
	d.mu.Unlock()
	d.save()
	d.Log.Info().Str("commit", dep.Commit).Str("phase", "confirm").Str("result", "deployed").
		Int("generation", dep.Generation).Str("storePath", dep.StorePath).Dur("durationMs", dep.Duration).Msg("deployment confirmed")
	d.setPhase(status.Idle, "deployed "+short(dep.Commit))
	d.postDeploy(ctx, dep, nil)
	d.maybeReboot(ctx)
	return passResult{result: "deployed"}
}

// waitHealthy runs the health checks until they all pass or the deadline.
func (d *Daemon) waitHealthy(ctx context.Context, deadline time.Time) error {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	for {
		err := d.healthy(ctx)
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

// healthy checks that the git remote is reachable and every configured
// health check exits 0.
func (d *Daemon) healthy(ctx context.Context) error {
	if r, ok := d.Git.(interface{ Reachable(context.Context) error }); ok {
		if err := r.Reachable(ctx); err != nil {
			return fmt.Errorf("git remote unreachable: %w", err)
		}
	}
	for _, c := range d.Config.Deploy.HealthChecks {
		if err := runShell(ctx, c, nil); err != nil {
			return fmt.Errorf("health check %q: %w", c, err)
		}
	}
	return nil
}

// rollback returns to the previous system and secrets, marks the commit
// bad and records why.
func (d *Daemon) rollback(ctx context.Context, p *state.Pending, phase string, cause error) passResult {
	d.setPhase(status.Activating, "rolling back "+short(p.Commit))
	log := d.Log.With().Str("commit", p.Commit).Str("phase", "rollback").Logger()
	var rbErr error
	sec, secErr := d.restoreSecrets(ctx, p)
	if p.PreviousSystem != "" {
		action := p.Action
		rbErr = d.Nix.Activate(context.WithoutCancel(ctx), p.PreviousSystem, d.activation(action, "rollback"))
	} else {
		rbErr = fmt.Errorf("no previous system is known")
	}
	if secErr != nil {
		rbErr = secErr
	}
	d.restartUnits(context.WithoutCancel(ctx), sec)
	msg := cleanErr(cause)
	dep := p.Deployment
	dep.Result = "rolled-back"
	dep.Error = msg
	dep.Duration = d.now().Sub(p.Time)
	d.mu.Lock()
	d.st.Pending = nil
	d.st.MarkBad(p.Commit, phase, msg, d.now())
	d.st.Record(dep)
	f := &state.Failure{Commit: p.Commit, Phase: phase, Message: msg + "; rolled back", Time: d.now()}
	if rbErr != nil {
		f.Message += " (rollback failed: " + rbErr.Error() + ")"
	}
	d.st.LastError = f
	d.lastErr = describe(f)
	d.mu.Unlock()
	d.save()
	ev := log.Error().Str("cause", msg)
	if rbErr != nil {
		ev = ev.AnErr("rollbackError", rbErr)
	}
	ev.Str("previous", p.PreviousSystem).Str("result", "rolled-back").Msg("rolled back")
	d.setPhase(status.Failed, d.lastErr)
	d.postDeploy(ctx, dep, cause)
	return passResult{result: "rolled-back", err: fmt.Errorf("%s: %s; rolled back", phase, msg)}
}

// restoreSecrets makes the previous deployment's secrets generation current
// again. It runs before the previous system is activated, so that services
// that activation starts read the secrets they were built for; the result
// names the units to restart because their secrets changed back.
func (d *Daemon) restoreSecrets(ctx context.Context, p *state.Pending) (SecretsResult, error) {
	if p.Previous == nil || p.Previous.SecretsGen == "" || d.Secrets == nil {
		return SecretsResult{}, nil
	}
	r, err := d.Secrets.Restore(context.WithoutCancel(ctx), p.PreviousSystem, p.Previous.SecretsGen)
	if err != nil {
		return SecretsResult{}, fmt.Errorf("restoring secrets generation %s: %w", p.Previous.SecretsGen, err)
	}
	return r, nil
}

// resumePending finishes a deployment a previous agent process started:
// confirm it when the switch happened, roll it back otherwise.
func (d *Daemon) resumePending(ctx context.Context) error {
	d.mu.Lock()
	p := d.st.Pending
	d.mu.Unlock()
	if p == nil {
		return nil
	}
	d.Log.Info().Str("commit", p.Commit).Str("phase", "confirm").Bool("activated", p.Activated).
		Msg("resuming a deployment interrupted by a restart")
	if !p.Activated && d.Config.Deploy.SystemdRunEnabled() {
		d.waitForSwitchUnit(ctx, d.activation(p.Action, p.Commit).Unit)
	}
	if !p.Activated && !d.switched(p) {
		r := d.rollback(ctx, p, "activate", fmt.Errorf("activation was interrupted by an agent restart; use sync --force to retry"))
		return r.err
	}
	if !p.Activated {
		gen := d.generation()
		d.mu.Lock()
		p.Activated, p.Generation = true, gen
		d.mu.Unlock()
	}
	d.mu.Lock()
	if p.Deadline.Before(d.now().Add(healthRetry)) {
		p.Deadline = d.now().Add(healthRetry * 3) // one more chance after a slow boot
	}
	d.mu.Unlock()
	return d.confirm(ctx, p, SecretsResult{}).err
}

// switched reports whether the pending target is what the host now runs.
func (d *Daemon) switched(p *state.Pending) bool {
	if p.Action == "boot" {
		return resolve(d.Config.Deploy.Profile) == p.StorePath
	}
	return resolve(d.Config.Deploy.CurrentSystem) == p.StorePath
}

// restartUnits restarts and reloads units whose secrets changed.
func (d *Daemon) restartUnits(ctx context.Context, sec SecretsResult) {
	for verb, units := range map[string][]string{"try-restart": sec.Restart, "try-reload-or-restart": sec.Reload} {
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
		env = append(env, "AVALANCHE_ERROR="+cleanErr(cause))
	}
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	defer cancel()
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

// waitForSwitchUnit waits while the transient unit that ran
// switch-to-configuration is still going: it survives the agent's restart
// (that is its purpose), and judging the pending record before it ends
// would roll back a switch that is about to succeed.
func (d *Daemon) waitForSwitchUnit(ctx context.Context, unit string) {
	ctx, cancel := context.WithTimeout(ctx, activateTimeout)
	defer cancel()
	for {
		out, _ := exec.CommandContext(ctx, "systemctl", "is-active", unit).Output()
		switch strings.TrimSpace(string(out)) {
		case "active", "activating", "deactivating", "reloading":
		default:
			return
		}
		d.setPhase(status.Activating, "waiting for "+unit+" to finish")
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}
