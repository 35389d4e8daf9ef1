package daemon

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/status"
)

// coalesceQuiet is how long triggers must stay quiet before a triggered pass
// starts; coalesceMax bounds the wait, so a flood of triggers still gets a
// pass within about a second and the whole flood makes one pass.
const (
	coalesceQuiet = 100 * time.Millisecond
	coalesceMax   = time.Second
)

// Trigger asks for a pass soon. Many triggers coalesce into one pass.
func (d *Daemon) Trigger() {
	select {
	case d.trigger <- struct{}{}:
	default:
	}
	select {
	case d.poke <- struct{}{}:
	default:
	}
}

// loop runs passes on the poll timer and on triggers until ctx ends; the
// first, at once, starts by recovering what a previous process left. It beats the watchdog while it
// waits, so a loop that stops coming round stops the pings.
func (d *Daemon) loop(ctx context.Context) {
	for {
		d.mu.Lock()
		wait := d.delay // 0 at start-up: first boot, or after an upgrade
		d.mu.Unlock()
		if !d.wait(ctx, wait) {
			d.failWaiters(ctx.Err())
			return
		}
		res := d.runPass(ctx)
		if res.result == "deployed" && d.agentUpgraded() {
			return
		}
	}
}

// schedule sets when the next pass runs after one that ended with res: the
// jittered poll interval, a backoff after retried failures, or sooner when
// the pass asked for it.
func (d *Daemon) schedule(res passResult) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if res.class.Retried() {
		d.failures++
	} else {
		d.failures = 0
	}
	wait := d.nextWait(d.failures)
	if res.retryIn > 0 && res.retryIn < wait {
		wait = res.retryIn
	}
	d.delay, d.nextPoll = wait, d.now().Add(wait)
}

// beatEvery is how often a waiting loop tells the watchdog it is alive;
// well under any sensible WatchdogSec.
const beatEvery = 5 * time.Second

// wait sleeps until the timer or a (coalesced) trigger; false when ctx ended.
func (d *Daemon) wait(ctx context.Context, wait time.Duration) bool {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	beat := time.NewTicker(beatEvery)
	defer beat.Stop()
	for {
		d.Notify.Beat()
		select {
		case <-ctx.Done():
			return false
		case <-beat.C:
		case <-timer.C:
			return true
		case <-d.trigger:
			d.coalesce(ctx)
			return ctx.Err() == nil
		}
	}
}

// coalesce absorbs further triggers until they stay quiet for
// coalesceQuiet, at most coalesceMax.
func (d *Daemon) coalesce(ctx context.Context) {
	deadline := time.NewTimer(coalesceMax)
	defer deadline.Stop()
	for {
		quiet := time.NewTimer(coalesceQuiet)
		select {
		case <-ctx.Done():
			quiet.Stop()
			return
		case <-deadline.C:
			quiet.Stop()
			return
		case <-quiet.C:
			return
		case <-d.trigger:
			quiet.Stop()
		}
	}
}

// nextWait is the jittered poll interval, or an exponential backoff after
// transient failures (5s, 10s, 20s ... capped at the poll interval, at
// least 5 minutes apart at most).
func (d *Daemon) nextWait(failures int) time.Duration {
	base := d.Config.PollInterval.D()
	if failures > 0 {
		backoff := 5 * time.Second << min(failures-1, 10)
		limit := max(base, 5*time.Minute)
		base = min(backoff, limit)
	}
	// ±10% jitter so a fleet does not poll in lockstep.
	j := time.Duration(rand.Int64N(int64(base)/5+1)) - base/10
	return base + j
}

// runPass runs one pass and resolves the waiters that asked for it.
func (d *Daemon) runPass(ctx context.Context) passResult {
	d.passLock.Lock()
	defer d.passLock.Unlock()
	if res, ok := d.recover(ctx); !ok {
		d.schedule(res)
		return res // nothing else runs before a deployment left open is settled
	}
	d.applyConfig()
	d.mu.Lock()
	waiters := d.waiters
	d.waiters = nil
	force := d.force
	d.force = false
	n := d.passes + 1
	d.mu.Unlock()

	res := d.pass(ctx, force)
	// Counted and scheduled before anyone hears of it: a caller that saw
	// its result sees this pass counted and the next one planned.
	d.schedule(res)
	d.idleStatus()
	d.mu.Lock()
	d.passes = n
	d.mu.Unlock()
	sr := status.SyncResult{Pass: n, OK: res.err == nil, Result: res.result}
	if res.err != nil {
		sr.Error = res.err.Error()
	}
	for _, w := range waiters {
		w <- sr
	}
	if d.Hooks.AfterPass != nil {
		d.Hooks.AfterPass(ctx)
	}
	if d.Hooks.Pass != nil {
		d.Hooks.Pass(d.Status())
	}
	return res
}

func (d *Daemon) failWaiters(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, w := range d.waiters {
		w <- status.SyncResult{Error: "agent stopping: " + err.Error()}
	}
	d.waiters = nil
}

// Sync implements localapi.Backend: it triggers a pass and, with wait,
// returns that pass's result.
func (d *Daemon) Sync(ctx context.Context, wait, force bool) (status.SyncResult, error) {
	ch := make(chan status.SyncResult, 1)
	d.mu.Lock()
	if force {
		d.force = true
	}
	if wait {
		d.waiters = append(d.waiters, ch)
	}
	d.mu.Unlock()
	d.Trigger()
	if !wait {
		return status.SyncResult{Result: "triggered", OK: true}, nil
	}
	select {
	case r := <-ch:
		return r, nil
	case <-ctx.Done():
		return status.SyncResult{}, ctx.Err()
	}
}

// agentUpgraded reports whether the system now running ships a different
// avalanche-agent than this process. The service is not restarted by the
// switch (a restart would kill the deployment), so the agent restarts
// itself: it returns ErrRestart and systemd (Restart=always) starts the new
// binary.
func (d *Daemon) agentUpgraded() bool {
	if d.SelfPath == "" {
		return false
	}
	next := resolve(filepath.Join(d.Config.Deploy.CurrentSystem, "sw", "bin", "avalanche-agent"))
	if next == "" || next == resolve(d.SelfPath) {
		return false
	}
	d.Log.Info().Str("from", d.SelfPath).Str("to", next).Msg("the new system ships a new agent; restarting into it")
	d.restart = true
	return true
}
