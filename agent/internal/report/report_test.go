package report_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"

	"github.com/avalanche-fleet/avalanche/agent/internal/config"
	"github.com/avalanche-fleet/avalanche/agent/internal/daemon"
	"github.com/avalanche-fleet/avalanche/agent/internal/report"
	"github.com/avalanche-fleet/avalanche/pkg/forge"
	"github.com/avalanche-fleet/avalanche/pkg/forge/forgetest"
	"github.com/avalanche-fleet/avalanche/pkg/gitsync/gittest"
)

// world is a fake Forgejo over a real repository and the config of a host
// reporting to it.
type world struct {
	fake    *forgetest.Server
	cfg     *config.Config
	commits []string
}

func newWorld(t testing.TB, commits int) *world {
	t.Helper()
	repo := gittest.NewRepo(t)
	w := &world{}
	for i := range commits {
		w.commits = append(w.commits, repo.Commit(t, map[string]string{"n": fmt.Sprint(i)}, fmt.Sprint("commit ", i)))
	}
	w.fake = forgetest.Start(t, "fleet/avalanche", repo.Dir, "forge-token")
	dir := t.TempDir()
	token := filepath.Join(dir, "forge-token")
	if err := os.WriteFile(token, []byte("forge-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]any{"version": 1, "hostname": "eagle", "stateDir": filepath.Join(dir, "state"),
		"repository": map[string]any{"url": "https://git.internal/fleet/avalanche.git"},
		"report":     map[string]any{"forge": map[string]any{"url": w.fake.URL, "tokenFile": token}}})
	var err error
	if w.cfg, err = config.Parse(b); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(w.cfg.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	return w
}

// reporter opens the reporter as an agent start does; run starts its sender.
func (w *world) reporter(t *testing.T) *report.Reporter {
	t.Helper()
	r, err := report.New(w.cfg, zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil {
		t.Fatalf("New = %v", err)
	}
	r.MinBackoff, r.MaxBackoff = 10*time.Millisecond, 40*time.Millisecond
	return r
}

func run(t *testing.T, r *report.Reporter) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop
}

func ev(result, commit, class, msg string) daemon.DeploymentEvent {
	return daemon.DeploymentEvent{Commit: commit, Branch: "main", Reason: "commit", Result: result, Class: class, Error: msg}
}

func states(got []forgetest.Received) []string {
	var out []string
	for _, r := range got {
		out = append(out, fmt.Sprintf("%s %s %s: %s", r.SHA[:7], r.Status.Context, r.Status.State, r.Status.Description))
	}
	return out
}

func TestDeploymentStatuses(t *testing.T) {
	w := newWorld(t, 4)
	r := w.reporter(t)
	run(t, r)
	c := w.commits
	for _, e := range []daemon.DeploymentEvent{
		ev("pending", c[0], "", ""), ev("deployed", c[0], "", ""),
		ev("pending", c[1], "", ""), ev("rolled-back", c[1], "commit", "activate: switch-to-configuration exited 1"),
		ev("pending", c[2], "", ""), ev("failed", c[2], "host", "build: no space left on device"),
		ev("pending", c[3], "", ""), ev("interrupted", c[3], "shutdown", "stopping"),
		{Commit: c[3], Branch: "testing/eagle", Reason: "drift", Result: "pending"},
		{Commit: c[3], Branch: "testing/eagle", Reason: "drift", Result: "up-to-date"},
	} {
		r.Deployment(e)
		// Each sent before the next event, or the next would replace it.
		waitFor(t, "the queue to empty", func() bool { return r.Status().Queued == 0 })
	}
	got := states(w.fake.Wait(t, 9, 10*time.Second))
	s := func(i int, state, desc string) string {
		return fmt.Sprintf("%s avalanche/eagle %s: %s", c[i][:7], state, desc)
	}
	want := []string{
		s(0, "pending", "deploying"), s(0, "success", "deployed"),
		s(1, "pending", "deploying"), s(1, "failure", "rolled back: activate: switch-to-configuration exited 1"),
		s(2, "pending", "deploying"), s(2, "error", "failed, will retry: build: no space left on device"),
		s(3, "pending", "deploying"),
		s(3, "pending", "repairing drift: activating this commit again (branch testing/eagle)"),
		s(3, "success", "up to date: this commit does not change the system (branch testing/eagle)"),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("statuses on the forge (-want +got):\n%s", diff)
	}
	if v := r.Status(); v.Queued != 0 || v.Error != "" || v.LastSent.IsZero() || v.Repository != "fleet/avalanche" {
		t.Errorf("Status() = %+v; want nothing queued, no error, a last sent time, repository fleet/avalanche", v)
	}
}

// While the forge is down nothing blocks, statuses queue (pending replaced
// by the outcome of the same commit), status says so, and a restarted
// reporter sends what the stopped one left, in order.
func TestQueueSurvivesRestart(t *testing.T) {
	w := newWorld(t, 2)
	w.fake.Stop()
	r := w.reporter(t)
	stop := run(t, r)
	start := time.Now()
	r.Deployment(ev("pending", w.commits[0], "", ""))
	waitFor(t, "the first attempt to fail", func() bool { return r.Status().Error != "" })
	r.Deployment(ev("deployed", w.commits[0], "", ""))
	r.Deployment(ev("pending", w.commits[1], "", ""))
	r.Deployment(ev("failed", w.commits[1], "commit", "evaluate: error: attribute 'toplevel' missing"))
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("queueing four statuses took %v while the forge was down; want no waiting", d)
	}
	v := r.Status()
	if v.Queued != 2 || !strings.Contains(v.Error, "connection refused") || v.FailingSince.IsZero() || v.NextAttempt.IsZero() {
		t.Errorf("Status() with the forge down = %+v; want 2 queued, connection refused, failing since and next attempt set", v)
	}
	stop()

	w.fake.Restart(t)
	r2 := w.reporter(t)
	if q := r2.Status().Queued; q != 2 {
		t.Fatalf("after a restart %d statuses are queued; want the 2 left", q)
	}
	run(t, r2)
	got := states(w.fake.Wait(t, 2, 10*time.Second))
	want := []string{
		w.commits[0][:7] + " avalanche/eagle success: deployed",
		w.commits[1][:7] + " avalanche/eagle failure: failed: evaluate: error: attribute 'toplevel' missing",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("statuses after the restart (-want +got):\n%s", diff)
	}
	waitFor(t, "the queue to empty", func() bool { return r2.Status().Queued == 0 })
	if v := r2.Status(); v.Error != "" || !v.FailingSince.IsZero() {
		t.Errorf("Status() after delivery = %+v; want no error", v)
	}
}

// 5xx answers are retried with backoff until one is accepted; a status the
// forge refuses as it is (an unknown commit) is dropped, not retried, and
// does not hold up the next.
func TestRetriesAndDrops(t *testing.T) {
	w := newWorld(t, 1)
	r := w.reporter(t)
	w.fake.Fail(500, 502, 503)
	run(t, r)
	r.Add(w.commits[0], forge.Status{State: forge.Pending, Context: "avalanche/eagle", Description: "deploying"})
	w.fake.Wait(t, 1, 10*time.Second)
	if n := w.fake.Attempts(); n != 4 {
		t.Errorf("forge saw %d attempts; want 3 failures and 1 success", n)
	}
	unknown := strings.Repeat("0", 40)
	r.Add(unknown, forge.Status{State: forge.Success, Context: "avalanche/eagle"})
	waitFor(t, "the unknown commit's status to be dropped", func() bool { return r.Status().Dropped == 1 })
	if v := r.Status(); !strings.Contains(v.Error, "404 Not Found") || !v.FailingSince.IsZero() {
		t.Errorf("Status() = %+v; want the forge's 404, and the forge not counted as failing", v)
	}
	r.Add(w.commits[0], forge.Status{State: forge.Success, Context: "avalanche/eagle", Description: "deployed"})
	got := w.fake.Wait(t, 2, 10*time.Second)
	if got[1].Status.State != forge.Success || got[1].SHA != w.commits[0] {
		t.Errorf("second status = %+v; want success on %s after the unknown commit was dropped", got[1], w.commits[0])
	}
	if n := w.fake.Attempts(); n != 6 {
		t.Errorf("forge saw %d attempts; want 6 (4, then the refused status once, then the last)", n)
	}
}

func TestSuperseded(t *testing.T) {
	w := newWorld(t, 2)
	r := w.reporter(t)
	// Not running: the pending of commit 0 is still queued, so it is
	// withdrawn; commit 1's pending was sent, so it gets a new one.
	r.Deployment(ev("pending", w.commits[0], "", ""))
	r.Deployment(ev("superseded", w.commits[0], "superseded", "a newer commit"))
	if q := r.Status().Queued; q != 0 {
		t.Errorf("after withdrawing an unsent pending %d statuses are queued; want 0", q)
	}
	run(t, r)
	r.Deployment(ev("pending", w.commits[1], "", ""))
	w.fake.Wait(t, 1, 5*time.Second)
	r.Deployment(ev("superseded", w.commits[1], "superseded", "a newer commit"))
	got := states(w.fake.Wait(t, 2, 5*time.Second))
	want := []string{w.commits[1][:7] + " avalanche/eagle pending: deploying",
		w.commits[1][:7] + " avalanche/eagle pending: superseded: a newer commit was deployed before this one"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
}

func TestBuilderStatus(t *testing.T) {
	w := newWorld(t, 1)
	r := w.reporter(t)
	run(t, r)
	c := w.commits[0]
	r.BuilderStarted(c)
	w.fake.Wait(t, 1, 5*time.Second)
	r.BuilderDone(c, map[string]string{"eagle": "", "raccoon03": "build failed", "calypso": "eval failed", "opi01": ""}, "", nil)
	w.fake.Wait(t, 2, 5*time.Second)
	r.BuilderDone(c, nil, "", errors.New("pushing the release: connection refused"))
	w.fake.Wait(t, 3, 5*time.Second)
	r.BuilderDone(c, map[string]string{"eagle": "", "opi01": ""}, "", nil)
	got := states(w.fake.Wait(t, 4, 5*time.Second))
	p := c[:7] + " avalanche/builder "
	want := []string{p + "pending: building every host's system", p + "failure: 2 hosts built; failed: calypso, raccoon03",
		p + "error: release failed, will retry: pushing the release: connection refused", p + "success: 2 hosts built and cached"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
}

// An unreadable queue file is moved aside, not lost, and the agent starts.
func TestUnreadableQueue(t *testing.T) {
	w := newWorld(t, 1)
	if err := os.WriteFile(w.cfg.QueuePath(), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := w.reporter(t)
	if q := r.Status().Queued; q != 0 {
		t.Errorf("queued = %d; want an empty queue", q)
	}
	if b, err := os.ReadFile(w.cfg.QueuePath() + ".unreadable"); err != nil || string(b) != "{not json" {
		t.Errorf("moved-aside queue = %q, %v; want the old file", b, err)
	}
}

// A queue write that a kill or a power cut interrupted leaves a temporary
// file beside the whole queue: the next start removes it.
func TestStaleQueueTempRemoved(t *testing.T) {
	w := newWorld(t, 1)
	stale := filepath.Join(filepath.Dir(w.cfg.QueuePath()), ".forge-queue.json.tmp-123")
	other := filepath.Join(filepath.Dir(w.cfg.QueuePath()), ".state.json.tmp-123")
	for _, f := range []string{stale, other} {
		if err := os.WriteFile(f, []byte(`{"version":1,"entr`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	w.reporter(t)
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the interrupted queue write is still there: %v", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("another file's temporary was touched: %v", err)
	}
}

// A hanging forge never holds up Add, and only one request is in flight.
func TestAddNeverWaitsForTheForge(t *testing.T) {
	var mu sync.Mutex
	inflight, most := 0, 0
	release := make(chan struct{})
	r := &report.Reporter{Host: "eagle", MinBackoff: time.Millisecond, Post: func(ctx context.Context, sha string, s forge.Status) error {
		mu.Lock()
		inflight++
		most = max(most, inflight)
		mu.Unlock()
		defer func() { mu.Lock(); inflight--; mu.Unlock() }()
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return errors.Join(forge.ErrUnavailable, ctx.Err())
		}
	}}
	run(t, r)
	start := time.Now()
	for i := range 50 {
		r.Add(fmt.Sprintf("%040d", i), forge.Status{State: forge.Pending, Context: r.Context()})
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("50 Adds took %v with the forge hanging; want no waiting", d)
	}
	close(release)
	waitFor(t, "the queue to empty", func() bool { return r.Status().Queued == 0 })
	if most != 1 {
		t.Errorf("at most %d requests were in flight at once; want 1", most)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
