package daemon_test

// Regression tests for issue 25 (items 6, 7 and 9): damage and restarts
// that the agent must neither hide nor turn into a verdict.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/avalanche-fleet/avalanche/agent/internal/daemon"
	"github.com/avalanche-fleet/avalanche/agent/internal/journal"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
)

// Item 6: a journal line that does not decode, followed by whole records,
// is disk damage: the agent refuses to start and says what to do, as for
// a damaged state.json, instead of dropping every record after it.
func TestDamagedJournalRefusesToStart(t *testing.T) {
	h := newHost(t, nil)
	if err := os.MkdirAll(h.cfg.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(h.cfg.StateDir, "journal")
	damaged := `{"id":1,"step":"begin","event":"intent"}` + "\n\x00\x00\x00\n" +
		`{"id":1,"step":"activate","event":"intent","unit":"avalanche-switch-1"}` + "\n"
	if err := os.WriteFile(path, []byte(damaged), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := newDaemon(t, h.cfg).Run(ctx)
	if !errors.Is(err, journal.ErrDamaged) || !strings.Contains(err.Error(), "move it away") {
		t.Fatalf("Run with a damaged journal = %v; want ErrDamaged and what to do", err)
	}
	if b, _ := os.ReadFile(path); string(b) != damaged {
		t.Errorf("journal after the refusal = %q; want it untouched", b)
	}
}

// Item 7: a rollback begins after the confirm deadline, long after the
// forward switch's deadline. A restart during its switch must wait for
// that switch against the rollback's own deadline, not stop it at once as
// overdue and switch again under it.
func TestRestartDuringLateRollbackLetsItsSwitchFinish(t *testing.T) {
	h := newHost(t, func(c map[string]any) {
		d := c["deploy"].(map[string]any)
		// The rollback starts 10 s after the switch: past its 8 s deadline.
		d["systemdRun"], d["switchTimeout"], d["confirmTimeout"] = true, "8s", "10s"
		d["healthChecks"] = []string{"! grep -q bad " + filepath.Join(d["currentSystem"].(string), "marker")}
	})
	env, _ := nixtest.FakeSystemd(t, h.dir)
	slow := filepath.Join(h.dir, "slow-switch")
	h.opts.SwitchLog, h.opts.SwitchSleep, h.opts.SwitchSlowMarker = h.switchLog(), 5*time.Second, slow
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
	if err := os.WriteFile(slow, nil, 0o644); err != nil { // the rollback's switch takes 5 s
		t.Fatal(err)
	}
	h.waitSwitchBegins(3)
	c.kill(t) // the rollback's unit goes on, as under systemd
	os.Remove(slow)
	h.startChild(env...)
	h.sync(false)

	ev := h.switchEvents()
	if len(ev) < 6 || ev[5] != "end|switch|"+good+"|0" {
		t.Errorf("switch log %q; want the rollback's switch to %s to run to its end (line 6)", ev, good)
	}
	h.checkNoOverlap(0)
	st := h.checkSettled(first)
	if st.Deployed.StorePath != good || currentTarget(t, h.current) != good {
		t.Errorf("deployed %s, running %s; want the first system %s", st.Deployed.StorePath, currentTarget(t, h.current), good)
	}
	if b := st.IsBad(second); b == nil || !strings.Contains(b.Reason, "not healthy") {
		t.Errorf("IsBad(%s) = %+v; want refused for its failed health check", second, b)
	}
}

// Item 9c: moving a damaged state.json away (what the refusal tells the
// operator to do) must not forget the last main commit deployed: an older
// main force-pushed afterwards is still refused.
func TestForcePushFloorSurvivesMovingStateAway(t *testing.T) {
	h := newHost(t, nil)
	one := h.commit("one", nil)
	h.opts.Marker = "v2"
	two := h.commit("two", nil)
	h.start()
	if s := h.status(); s.Deployed == nil || s.Deployed.Commit != two {
		t.Fatalf("deployed %+v; want %s", s.Deployed, two)
	}
	h.stop()
	if err := os.Rename(h.cfg.StatePath(), h.cfg.StatePath()+".damaged"); err != nil {
		t.Fatal(err)
	}
	gitRun(t, h.up.Work, "reset", "--hard", one)
	gitPush(t, h, "HEAD:refs/heads/main") // an older, valid main

	h.start()
	r := h.sync(false)
	if r.OK || !strings.Contains(r.Error, "force-pushed") {
		t.Errorf("sync after the state file was moved away and main force-pushed back = %+v; want refused as force-pushed", r)
	}
	if len(h.activations()) != 1 {
		t.Errorf("activations = %q; want only the deployment of %s", h.activations(), two)
	}
}

// Item 9b: a crash after a flight's end is journaled but before the state
// file, the post-deploy hook and the forge heard of it. The next start
// settles it and also runs the hook and reports the end.
func TestRecoveredEndedFlightRunsHookAndReports(t *testing.T) {
	hookLog := filepath.Join(t.TempDir(), "hook.log")
	h := newHost(t, func(c map[string]any) {
		c["deploy"].(map[string]any)["postDeployHook"] = `echo "$AVALANCHE_RESULT $AVALANCHE_COMMIT" >> ` + hookLog
	})
	var mu sync.Mutex
	var events []string
	h.setup = func(d *daemon.Daemon) {
		d.Hooks.Deployment = func(ev daemon.DeploymentEvent) {
			mu.Lock()
			defer mu.Unlock()
			events = append(events, ev.Result+" "+ev.Commit)
		}
	}
	first := h.commit("first", nil)
	h.start()
	h.opts.EvalError = "broken on purpose"
	bad := h.commit("does not evaluate", nil)
	h.stop()

	// What the crash leaves: the end record, nothing else.
	st := h.state()
	j, _, err := journal.Open(filepath.Join(h.cfg.StateDir, "journal"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	j.Append(journal.Flight{ID: st.LastFlight + 1, Step: journal.StepEnd, Event: journal.Done, Time: now, Started: now,
		Reason: "commit", Commit: bad, Branch: "main", Action: "switch", Result: "failed", Class: "commit",
		FailedStep: journal.StepEvaluate, Cause: "evaluating: broken on purpose"})
	j.Close()
	mu.Lock()
	events = nil
	mu.Unlock()

	h.start()
	b, _ := os.ReadFile(hookLog)
	if want := "deployed " + first + "\nfailed " + bad + "\n"; string(b) != want {
		t.Errorf("post-deploy hook runs %q; want %q", b, want)
	}
	mu.Lock()
	if want := []string{"failed " + bad}; !cmp.Equal(events, want) {
		t.Errorf("deployment events after the restart = %q; want %q", events, want)
	}
	mu.Unlock()
	if st := h.state(); st.IsBad(bad) == nil {
		t.Errorf("state after the restart: bad %+v; want %s refused", st.IsBad(bad), bad)
	}
	if recs, err := journal.Read(filepath.Join(h.cfg.StateDir, "journal")); err != nil || len(recs) != 0 {
		t.Errorf("journal after the restart = %v, %d records; want empty", err, len(recs))
	}
}

// startupSecrets is a secrets store whose first Install (the start-up
// reinstall after a reboot) waits for release, and that notes any Install
// or Restore running beside another.
type startupSecrets struct {
	mu       sync.Mutex
	cur      string
	n        int
	busy     int
	overlap  bool
	hold     chan struct{} // closed: Installs go on
	reached  chan struct{}
	holdOnce sync.Once
}

func (s *startupSecrets) enter() func() {
	s.mu.Lock()
	s.busy++
	s.overlap = s.overlap || s.busy > 1
	s.mu.Unlock()
	return func() { s.mu.Lock(); s.busy--; s.mu.Unlock() }
}

func (s *startupSecrets) Install(ctx context.Context, system string) (daemon.SecretsResult, error) {
	defer s.enter()()
	if s.hold != nil {
		s.holdOnce.Do(func() { close(s.reached) })
		<-s.hold
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	prev := s.cur
	s.n++
	s.cur = fmt.Sprint(s.n)
	return daemon.SecretsResult{Generation: s.cur, Previous: prev}, nil
}

func (s *startupSecrets) Restore(ctx context.Context, system, gen string) (daemon.SecretsResult, error) {
	defer s.enter()()
	s.mu.Lock()
	defer s.mu.Unlock()
	prev := s.cur
	s.cur = gen
	return daemon.SecretsResult{Generation: gen, Previous: prev}, nil
}

func (s *startupSecrets) Current() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur, nil
}

func (s *startupSecrets) Clean() error { return nil }

// Item 9a: the start-up reinstall of the running system's secrets (after a
// reboot emptied the RAM file system) runs while the local API already
// listens. A rollback asked for then must wait for it: otherwise it
// restores the previous generation and the reinstall replaces it with the
// secrets of the system just rolled back from.
func TestRollbackWaitsForStartupSecrets(t *testing.T) {
	h := newHost(t, nil)
	sec := &startupSecrets{}
	h.setup = func(d *daemon.Daemon) { d.Secrets = sec }
	h.commit("first", nil)
	h.start()
	h.opts.Marker = "v2"
	h.commit("second", nil)
	h.sync(false)
	st := h.state()
	prevGen := st.History[len(st.History)-2].SecretsGen
	h.stop()

	sec.mu.Lock()
	sec.cur = "" // a reboot emptied the RAM file system
	sec.hold, sec.reached = make(chan struct{}), make(chan struct{})
	sec.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := newDaemon(t, h.cfg)
	d.Secrets = sec
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() { cancel(); <-done }()
	select {
	case <-sec.reached:
	case <-time.After(time.Minute):
		t.Fatal("the start-up secrets install never began")
	}
	waitSocket(t, h.cfg.SocketPath())
	rolled := make(chan error, 1)
	go func() { rolled <- h.client().Rollback(ctx) }()
	time.Sleep(time.Second) // the rollback, if not held back, runs now
	close(sec.hold)
	if err := <-rolled; err != nil {
		t.Fatalf("Rollback = %v", err)
	}
	h.waitPasses(1) // the start-up install is over
	sec.mu.Lock()
	defer sec.mu.Unlock()
	if sec.overlap || sec.cur != prevGen {
		t.Errorf("after the rollback: secrets generation %q, installs overlapped %t; want the previous system's %q and no overlap",
			sec.cur, sec.overlap, prevGen)
	}
}
