package daemon_test

// Regression tests for the lifecycle defects of issue 12: a stop, restart,
// crash or power cut at any instant never makes the agent lie, lose or
// stall. Each test names the defect it pins down; each failed on the agent
// before the deployment journal.

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/daemon"
	"github.com/avalanche-fleet/avalanche/agent/internal/state"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
)

// Defect 1: SIGTERM (stop, restart, shutdown) during evaluate, build or
// secrets marked the commit bad ("context canceled").
func TestStopIsNoVerdict(t *testing.T) {
	for _, step := range []string{"evaluate", "build", "secrets"} {
		t.Run(step, func(t *testing.T) {
			h := newHost(t, nil)
			h.commit("first", nil)
			p := newPauser()
			sec := &pausingSecrets{pauser: p}
			h.setup = func(d *daemon.Daemon) {
				d.Nix = pausingNix{Nix: d.Nix, step: step, pauser: p}
				if step == "secrets" {
					d.Secrets = sec
				}
			}
			h.start()
			p.armed.Store(true)
			h.opts.Marker = "v2"
			second := h.commit("second", nil)
			h.triggerSync()
			p.wait(t)
			h.stop() // what SIGTERM does: Run's context ends
			if b := h.state().IsBad(second); b != nil {
				t.Fatalf("after a stop during %s: IsBad(%s) = %+v; want no verdict", step, second, b)
			}
			p.armed.Store(false)
			h.start()
			if s := h.status(); s.Deployed == nil || s.Deployed.Commit != second {
				t.Errorf("after the restart: deployed %+v; want %s deployed without sync --force", s.Deployed, second)
			}
		})
	}
}

// Defect 2: a crash during a rollback left a pending record that the
// restarted agent confirmed: the state named the failed commit while the
// host ran the previous system.
func TestCrashDuringRollbackIsFinished(t *testing.T) {
	h := newHost(t, func(c map[string]any) {
		d := c["deploy"].(map[string]any)
		d["systemdRun"], d["confirmTimeout"] = true, "3s"
		d["healthChecks"] = []string{"! grep -q bad " + filepath.Join(c["deploy"].(map[string]any)["currentSystem"].(string), "marker")}
	})
	env, _ := nixtest.FakeSystemd(t, h.dir)
	slow := filepath.Join(h.dir, "slow-switch")
	h.opts.SwitchLog, h.opts.SwitchSleep, h.opts.SwitchSlowMarker = h.switchLog(), 3*time.Second, slow
	first := h.commit("first", nil)
	c := h.startChild(env...)
	if r := h.sync(false); !r.OK {
		t.Fatalf("first sync = %+v", r)
	}
	good := h.checkSettled(first).Deployed.StorePath

	h.opts.Marker = "bad-v2" // switches fine, then fails its health check
	second := h.commit("second, unhealthy", nil)
	h.triggerSync()
	h.waitSwitchBegins(2)
	if err := os.WriteFile(slow, nil, 0o644); err != nil { // the rollback's switch is slow
		t.Fatal(err)
	}
	h.waitSwitchBegins(3)
	c.kill(t) // the agent dies; the rollback's unit goes on, as under systemd
	os.Remove(slow)
	for deadline := time.Now().Add(20 * time.Second); currentTarget(t, h.current) != good; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the orphaned rollback never switched back; switch log %q", h.switchEvents())
		}
	}

	h.startChild(env...)
	h.sync(false)
	st := h.checkSettled(first)
	if st.Deployed.StorePath != good || currentTarget(t, h.current) != good {
		t.Errorf("deployed %s, running %s; want the first system %s", st.Deployed.StorePath, currentTarget(t, h.current), good)
	}
	if b := st.IsBad(second); b == nil || !strings.Contains(b.Reason, "not healthy") {
		t.Errorf("IsBad(%s) = %+v; want refused for its failed health check", second, b)
	}
	h.checkNoOverlap(0)
}

// Defect 4: SIGTERM during activation started the rollback while the
// transient switch unit still ran: two switch-to-configuration at once.
func TestStopDuringActivationWaitsForTheSwitch(t *testing.T) {
	h := newHost(t, func(c map[string]any) { c["deploy"].(map[string]any)["systemdRun"] = true })
	_, second, out, env := interruptActivation(t, h, func(c *child) { c.stop(t) })
	for deadline := time.Now().Add(20 * time.Second); len(h.switchEvents()) < 4; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("switches never ended; switch log %q", h.switchEvents())
		}
	}
	h.checkNoOverlap(0)

	h.startChild(env...)
	if r := h.sync(false); !r.OK {
		t.Errorf("sync after the restart = %+v; want ok", r)
	}
	st := h.checkSettled(second)
	if st.Deployed.StorePath != out || st.IsBad(second) != nil {
		t.Errorf("deployed %+v, bad %+v; want %s confirmed", st.Deployed, st.IsBad(second), second)
	}
	if n := h.countActivations("switch", out); n != 1 {
		t.Errorf("activations = %q; want exactly one switch to %s", h.activations(), out)
	}
	h.checkNoOverlap(0)
}

// Defect 4 (second half): a hung switch had no time limit. Its expiry is
// an activation failure of the commit, rolled back.
func TestSwitchTimeout(t *testing.T) {
	for _, systemdRun := range []bool{false, true} {
		t.Run(map[bool]string{false: "direct", true: "systemd-run"}[systemdRun], func(t *testing.T) {
			h := newHost(t, func(c map[string]any) {
				d := c["deploy"].(map[string]any)
				d["systemdRun"], d["switchTimeout"] = systemdRun, "2s"
			})
			env, _ := nixtest.FakeSystemd(t, h.dir)
			for _, kv := range env {
				name, value, _ := strings.Cut(kv, "=")
				t.Setenv(name, value)
			}
			h.opts.SwitchLog = h.switchLog()
			first := h.commit("first", nil)
			h.start()
			h.opts.Marker, h.opts.SwitchSleep = "v2", time.Hour
			hung := h.commit("hangs in its switch", nil)
			start := time.Now()
			r := h.sync(false)
			if r.Result != "rolled-back" || time.Since(start) > time.Minute {
				t.Fatalf("sync = %+v after %v; want rolled back after the 2s limit", r, time.Since(start))
			}
			st := h.checkSettled(first)
			if b := st.IsBad(hung); b == nil || !strings.Contains(b.Reason, "switchTimeout") {
				t.Errorf("IsBad(%s) = %+v; want refused for running past deploy.switchTimeout", hung, b)
			}
			h.checkNoOverlap(1) // the hung switch was killed: no end line
		})
	}
}

// Defect 5: drift was invisible. A hand-run rebuild replaced the deployed
// system; status claimed the commit and nothing converged back.
func TestDriftFromHandRunRebuild(t *testing.T) {
	for _, repair := range []bool{true, false} {
		t.Run(map[bool]string{true: "repaired", false: "reported"}[repair], func(t *testing.T) {
			h := newHost(t, func(c map[string]any) { c["deploy"].(map[string]any)["repairDrift"] = repair })
			first := h.commit("first", nil)
			h.start()
			deployed := h.status().Deployed.StorePath
			byHand := handBuild(t, h, func(o *nixtest.FlakeOptions) { o.Marker = "by hand" })
			handSwitch(t, h, byHand, "switch")

			r := h.sync(false)
			s := h.status()
			if !repair {
				if r.Result != "unchanged" || s.Drift == nil || s.Drift.Running != byHand || s.Drift.Expected != deployed ||
					!strings.Contains(s.Drift.Cause, "hand-run rebuild") || !strings.Contains(s.Drift.Repair, "report only") {
					t.Fatalf("sync = %+v, drift %+v; want the hand-run rebuild reported, not repaired", r, s.Drift)
				}
				if got := currentTarget(t, h.current); got != byHand {
					t.Errorf("current system = %s; want the hand-built %s left alone", got, byHand)
				}
				return
			}
			if r.Result != "deployed" || s.Drift != nil {
				t.Fatalf("sync = %+v, drift %+v; want the deployed system re-activated", r, s.Drift)
			}
			if got := currentTarget(t, h.current); got != deployed || s.Deployed.Commit != first {
				t.Errorf("current system = %s, deployed %s; want %s of %s back", got, s.Deployed.StorePath, deployed, first)
			}
			if b := h.state().IsBad(first); b != nil {
				t.Errorf("IsBad(%s) = %+v after a drift repair", first, b)
			}
		})
	}
}

// Defect 5: drift after a manual rollback is named as such.
func TestDriftFromManualRollback(t *testing.T) {
	h := newHost(t, func(c map[string]any) { c["deploy"].(map[string]any)["repairDrift"] = false })
	h.commit("first", nil)
	h.start()
	firstOut := h.status().Deployed.StorePath
	h.opts.Marker = "v2"
	h.commit("second", nil)
	h.sync(false)
	// nixos-rebuild switch --rollback: the profile's previous generation.
	if out, err := runNixEnv(t, h, "--rollback"); err != nil {
		t.Fatalf("nix-env --rollback: %v\n%s", err, out)
	}
	handSwitch(t, h, firstOut, "test") // the profile already points at it
	h.sync(false)
	if d := h.status().Drift; d == nil || !strings.Contains(d.Cause, "manual rollback to profile generation 1") {
		t.Errorf("drift = %+v; want a manual rollback to generation 1 named", d)
	}
}

// Defect 5: a reboot that ended a test deployment left status claiming
// the testing commit. The host runs its base deployment again; the test
// is not re-applied by itself.
func TestRebootEndsTestDeployment(t *testing.T) {
	h := newHost(t, nil)
	main := h.commit("main", nil)
	h.start()
	base := h.status().Deployed.StorePath
	h.opts.Marker = "trying"
	if err := nixtest.WriteFlake(h.up.Work, h.opts); err != nil {
		t.Fatal(err)
	}
	gitRun(t, h.up.Work, "commit", "--quiet", "-am", "try something")
	tried := gitPush(t, h, "HEAD:refs/heads/testing/"+hostName)
	if r := h.sync(false); r.Result != "deployed" || h.status().Deployed.Commit != tried {
		t.Fatalf("sync = %+v; want the testing commit deployed with test", r)
	}
	h.stop()
	// The reboot: the boot default (the profile, main's system) runs.
	setLink(t, h.current, base)
	setLink(t, h.cfg.Deploy.BootedSystem, base)
	acts := len(h.activations())

	h.start()
	s := h.status()
	if s.Deployed == nil || s.Deployed.Commit != main || s.Deployed.StorePath != base || s.Drift != nil {
		t.Errorf("after the reboot: deployed %+v, drift %+v; want main's %s, no drift", s.Deployed, s.Drift, main)
	}
	if got := h.activations(); len(got) != acts {
		t.Errorf("activations after the reboot = %q; want none (the test deployment is not re-applied)", got[acts:])
	}
	if st := h.state(); st.TestUndone != tried {
		t.Errorf("state.TestUndone = %q; want %s", st.TestUndone, tried)
	}
}

// Defect 6: the watchdog was pinged by an independent goroutine, so a hung
// reconcile loop was never caught.
func TestWatchdogStopsWhenTheLoopHangs(t *testing.T) {
	h := newHost(t, func(c map[string]any) { c["repository"].(map[string]any)["fetchTimeout"] = "1s" })
	h.commit("first", nil)
	n := listenNotify(t, 200*time.Millisecond)
	g := &hangingGit{release: make(chan struct{})}
	h.setup = func(d *daemon.Daemon) { g.Git = d.Git; d.Git = g }
	h.start()
	t.Cleanup(func() { close(g.release) }) // runs before the daemon's stop
	if n.count("WATCHDOG=1", time.Now().Add(-time.Second)) == 0 {
		t.Fatal("no watchdog pings from a healthy agent")
	}
	g.armed.Store(true)
	h.triggerSync()
	time.Sleep(3 * time.Second) // the fetch's 1s bound and a watchdog interval run out
	if got := n.count("WATCHDOG=1", time.Now().Add(-time.Second)); got != 0 {
		t.Errorf("%d watchdog pings in the last second while the loop hangs; want none", got)
	}
}

// Defect 7: a second agent on the same state directory silently took over
// the socket; both then wrote state.json and the repository.
func TestSecondInstanceRefused(t *testing.T) {
	h := newHost(t, nil)
	h.commit("first", nil)
	h.start()
	before, err := os.Stat(h.cfg.SocketPath())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = newDaemon(t, h.cfg).Run(ctx)
	if !errors.Is(err, state.ErrLocked) || !strings.Contains(err.Error(), "pid ") {
		t.Fatalf("second Run = %v; want refused, naming the first agent's PID", err)
	}
	after, err := os.Stat(h.cfg.SocketPath())
	if err != nil || !os.SameFile(before, after) {
		t.Errorf("the socket was replaced by the second agent")
	}
	if s := h.status(); s.Deployed == nil {
		t.Errorf("the first agent no longer answers: %+v", s)
	}
}

// Defect 8: recovery after a restart ran without the pass lock, so an API
// rollback could run beside it: two switches at once.
func TestRollbackWaitsForRecovery(t *testing.T) {
	h := newHost(t, func(c map[string]any) { c["deploy"].(map[string]any)["systemdRun"] = true })
	env, _ := nixtest.FakeSystemd(t, h.dir)
	slow := filepath.Join(h.dir, "slow-switch")
	h.opts.SwitchLog, h.opts.SwitchSleep, h.opts.SwitchSlowMarker = h.switchLog(), 3*time.Second, slow
	h.commit("first", nil)
	c := h.startChild(env...)
	h.sync(false)
	h.opts.Marker = "v2"
	h.commit("second", nil)
	h.sync(false)
	os.WriteFile(slow, nil, 0o644)
	h.opts.Marker = "v3"
	third := h.commit("third", nil)
	h.triggerSync()
	h.waitSwitchBegins(3)
	c.kill(t) // the third switch goes on in its unit
	os.Remove(slow)

	h.startChild(env...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := h.client().Rollback(ctx); err != nil {
		t.Fatalf("Rollback: %v", err)
	}
	h.checkNoOverlap(0)
	if st := h.state(); st.IsBad(third) == nil || st.Deployed.Commit == third {
		t.Errorf("after the rollback: deployed %s, bad %+v; want the third commit rolled back", st.Deployed.Commit, st.IsBad(third))
	}
}

// Defect 10: after a reclone (corrupt repository), sync --force could not
// accept a rewritten main: the ancestry error came before force was
// considered, and the pass retried forever.
func TestForceAcceptsRewrittenMainAfterReclone(t *testing.T) {
	h := newHost(t, nil)
	first := h.commit("first", nil)
	h.start()
	h.stop()
	gitRun(t, h.up.Work, "checkout", "-q", "--orphan", "rewritten")
	h.opts.Marker = "rewritten"
	rewritten := h.up.WriteFlake(t, h.opts, "a new history")
	gitRun(t, h.up.Work, "push", "-q", "--force", h.up.Bare, "rewritten:main")
	if err := os.WriteFile(filepath.Join(h.cfg.RepoDir(), "HEAD"), []byte("\x00garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	h.start()
	if s := h.status(); s.Deployed.Commit != first || !strings.Contains(s.LastError, "force-pushed") {
		t.Errorf("start-up pass: deployed %s, error %q; want %s kept and the rewrite refused", s.Deployed.Commit, s.LastError, first)
	}
	if r := h.sync(true); r.Result != "deployed" {
		t.Fatalf("sync --force = %+v; want the rewritten main deployed", r)
	}
	if st := h.state(); st.Deployed.Commit != rewritten || st.LastMain != rewritten {
		t.Errorf("deployed %s, lastMain %s; want %s", st.Deployed.Commit, st.LastMain, rewritten)
	}
}

// Defect 12: confirm deadlines were absolute wall-clock times, so a clock
// that jumps (a board without an RTC) stretched them far into the future.
func TestConfirmDeadlineIgnoresClockJumps(t *testing.T) {
	h := newHost(t, func(c map[string]any) {
		d := c["deploy"].(map[string]any)
		d["confirmTimeout"] = "2s"
		d["healthChecks"] = []string{"! grep -q bad " + filepath.Join(d["currentSystem"].(string), "marker")}
	})
	h.setup = func(d *daemon.Daemon) {
		d.Now = func() time.Time { return time.Now().AddDate(50, 0, 0) } // the clock jumped ahead
	}
	first := h.commit("first", nil)
	h.start()
	h.opts.Marker = "bad"
	h.commit("unhealthy", nil)
	start := time.Now()
	if r := h.sync(false); r.Result != "rolled-back" || time.Since(start) > 40*time.Second {
		t.Fatalf("sync = %+v after %v; want rolled back after the 2s confirm timeout", r, time.Since(start))
	}
	h.checkSettled(first)
}

// Defect 12: GC roots were pruned by modification time, so after a clock
// jump a fresh root looked older than stale ones and was pruned before the
// switch to it.
func TestGCRootsSurviveClockJumps(t *testing.T) {
	h := newHost(t, func(c map[string]any) { c["deploy"].(map[string]any)["keepGCRoots"] = 1 })
	roots := filepath.Join(h.cfg.StateDir, "gcroots")
	if err := os.MkdirAll(roots, 0o755); err != nil {
		t.Fatal(err)
	}
	future := time.Now().AddDate(60, 0, 0)
	for _, name := range []string{"system-4000000000-aaaa", "system-4000000001-bbbb"} {
		p := filepath.Join(roots, name)
		os.Symlink("/nix/store/00000000000000000000000000000000-stale", p)
		setSymlinkTime(t, p, future)
	}
	h.commit("first", nil)
	h.start()
	out := h.status().Deployed.StorePath
	var kept bool
	entries, _ := os.ReadDir(roots)
	for _, e := range entries {
		if target, _ := os.Readlink(filepath.Join(roots, e.Name())); target == out {
			kept = true
		}
	}
	if !kept {
		t.Errorf("no GC root holds the deployed system %s; roots %v", out, entries)
	}
}

// An agent from before the journal left a pending record in state.json
// (its switch had run): the new agent takes it over and confirms it,
// without switching again.
func TestLegacyPendingIsTakenOver(t *testing.T) {
	h := newHost(t, nil)
	h.commit("first", nil)
	h.start()
	h.stop()
	st := h.state()
	prev := *st.Deployed
	h.opts.Marker = "v2"
	second := h.commit("second", nil)
	out := handBuild(t, h, func(*nixtest.FlakeOptions) {})
	handSwitch(t, h, out, "switch") // what the old agent did before it died
	acts := len(h.activations())
	st.Pending = &state.Pending{Deployment: state.Deployment{Commit: second, Branch: "main", Action: "switch", StorePath: out,
		Result: "pending", Time: time.Now()}, Previous: &prev, PreviousSystem: prev.StorePath, Activated: true,
		Deadline: time.Now().Add(time.Minute)}
	if err := state.Save(h.cfg.StatePath(), st); err != nil {
		t.Fatal(err)
	}

	h.start()
	got := h.checkSettled(second)
	if got.Deployed.StorePath != out || got.Pending != nil {
		t.Errorf("after the takeover: deployed %+v, pending %+v; want %s confirmed", got.Deployed, got.Pending, out)
	}
	if n := len(h.activations()); n != acts {
		t.Errorf("activations after the takeover = %q; want no new switch", h.activations()[acts:])
	}
}

// A power cut after the profile was set and before the switch boots the
// new system without the agent having deployed it: recovery put the
// previous secrets back, and nothing of the deployment after the profile
// ran. The next pass deploys that commit in full rather than calling it
// up to date because it runs (found by the builder-mode power-cut tier:
// the host ran the new system with the previous commit's secrets).
func TestBootedUndeployedSystemIsDeployed(t *testing.T) {
	h := newHost(t, nil)
	h.commit("first", nil)
	h.start()
	h.stop()
	second := func(o *nixtest.FlakeOptions) { o.Marker = "second" }
	booted := handBuild(t, h, second)
	setLink(t, h.current, booted)
	setLink(t, h.cfg.Deploy.BootedSystem, booted)
	second(&h.opts)
	c2 := h.commit("second", nil)
	acts := len(h.activations())
	h.start()
	s := h.status()
	if s.Deployed == nil || s.Deployed.Commit != c2 || s.Deployed.Result != "deployed" || s.Deployed.StorePath != booted {
		t.Fatalf("deployed = %+v; want %s deployed in full (%s)", s.Deployed, c2, booted)
	}
	if n := len(h.activations()) - acts; n != 1 {
		t.Errorf("%d activations; want the booted system activated once by the deployment", n)
	}
}
