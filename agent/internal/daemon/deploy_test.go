package daemon_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/daemon"

	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
)

func TestFirstDeployThenNoOpCommit(t *testing.T) {
	h := newHost(t, nil)
	c1 := h.commit("first", nil)
	h.start() // deploys at start-up

	s := h.status()
	if s.Deployed == nil || s.Deployed.Commit != c1 {
		t.Fatalf("status.Deployed = %+v; want commit %s", s.Deployed, c1)
	}
	acts := h.activations()
	if len(acts) != 1 || !strings.HasPrefix(acts[0], "switch|") {
		t.Fatalf("activations = %q; want one switch", acts)
	}
	out := strings.TrimPrefix(acts[0], "switch|")
	if got := currentTarget(t, h.current); got != out {
		t.Errorf("current system = %q; want %q", got, out)
	}
	if s.Deployed.Generation != 1 || s.Deployed.StorePath != out {
		t.Errorf("deployed generation/store path = %d %q; want 1 %q", s.Deployed.Generation, s.Deployed.StorePath, out)
	}

	// A commit that only touches kubernetes/ evaluates to the same system.
	c2 := h.commit("k8s only", map[string]string{"kubernetes/app.yaml": "kind: ConfigMap\n"})
	r := h.sync(false)
	if !r.OK || r.Result != "up-to-date" {
		t.Fatalf("no-op sync = %+v; want up-to-date", r)
	}
	if got := h.activations(); len(got) != 1 {
		t.Errorf("activations after no-op commit = %q; want still one", got)
	}
	if s := h.status(); s.Deployed.Commit != c2 || s.Deployed.Result != "up-to-date" {
		t.Errorf("deployed after no-op = %+v; want %s up-to-date", s.Deployed, c2)
	}

	// Nothing new: the pass ends after the ref advertisement, writing nothing.
	before, _ := os.Stat(h.cfg.StatePath())
	h.server.Reset()
	r = h.sync(false)
	if r.Result != "unchanged" {
		t.Errorf("unchanged sync = %+v; want unchanged", r)
	}
	after, _ := os.Stat(h.cfg.StatePath())
	if !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("state file rewritten by an unchanged poll")
	}
	if n := h.server.Count("POST"); n != 0 {
		t.Errorf("unchanged poll made %d upload-pack POSTs; want 0", n)
	}
}

func TestEvalAndBuildErrorsAreRecordedNotRetried(t *testing.T) {
	h := newHost(t, nil)
	h.commit("good", nil)
	h.start()
	if s := h.status(); s.Deployed == nil || s.Deployed.Result != "deployed" {
		t.Fatalf("after start-up deployed = %+v", s.Deployed)
	}

	h.opts.EvalError = "deliberate eval failure"
	bad := h.commit("eval error", nil)
	r := h.sync(false)
	if r.OK || !strings.Contains(r.Error, "deliberate eval failure") {
		t.Fatalf("eval error sync = %+v; want the throw message", r)
	}
	if s := h.status(); s.State != "failed" || !strings.Contains(s.LastError, "deliberate eval failure") {
		t.Errorf("status = %q / %q; want failed with the message", s.State, s.LastError)
	}
	r = h.sync(false)
	if r.Result != "refused" {
		t.Errorf("second sync of a failed commit = %+v; want refused (not retried)", r)
	}
	if st := h.state(); st.IsBad(bad) == nil {
		t.Errorf("state does not mark %s bad", bad)
	}

	h.opts.EvalError = ""
	h.opts.BuildFail = true
	h.opts.Marker = "v2"
	h.commit("build error", nil)
	r = h.sync(false)
	if r.OK || !strings.Contains(r.Error, "build failure requested") {
		t.Fatalf("build error sync = %+v; want the build log tail", r)
	}
	if got := h.activations(); len(got) != 1 {
		t.Errorf("activations = %q; want only the first deploy", got)
	}
}

func TestActivationFailureRollsBack(t *testing.T) {
	h := newHost(t, nil)
	h.commit("good", nil)
	h.start()
	good := currentTarget(t, h.current)

	h.opts.Marker = "v2"
	h.opts.ActivationExit = 1
	bad := h.commit("activation fails", nil)
	r := h.sync(false)
	if r.Result != "rolled-back" {
		t.Fatalf("sync = %+v; want rolled-back", r)
	}
	if got := currentTarget(t, h.current); got != good {
		t.Errorf("current system after rollback = %q; want %q", got, good)
	}
	acts := h.activations()
	if len(acts) != 3 || acts[2] != "switch|"+good {
		t.Errorf("activations = %q; want good, bad, good again", acts)
	}
	// Never deployed again.
	if r := h.sync(false); r.Result != "refused" {
		t.Errorf("sync after rollback = %+v; want refused", r)
	}
	if st := h.state(); st.IsBad(bad) == nil || st.Pending != nil {
		t.Errorf("state: bad=%v pending=%v; want bad commit and no pending", st.IsBad(bad), st.Pending)
	}
}

func TestHealthCheckFailureRollsBack(t *testing.T) {
	marker := t.TempDir() + "/unhealthy"
	h := newHost(t, func(c map[string]any) {
		c["deploy"].(map[string]any)["healthChecks"] = []string{"test ! -e " + marker}
		c["deploy"].(map[string]any)["confirmTimeout"] = "3s"
	})
	h.commit("good", nil)
	h.start()
	if s := h.status(); s.Deployed == nil || s.Deployed.Result != "deployed" {
		t.Fatalf("after start-up deployed = %+v", s.Deployed)
	}
	good := currentTarget(t, h.current)
	os.WriteFile(marker, nil, 0o644)
	h.opts.Marker = "v2"
	h.commit("unhealthy", nil)
	r := h.sync(false)
	if r.Result != "rolled-back" || !strings.Contains(r.Error, "health check") {
		t.Fatalf("sync = %+v; want rolled-back by the health check", r)
	}
	if got := currentTarget(t, h.current); got != good {
		t.Errorf("current system = %q; want %q", got, good)
	}
	if s := h.status(); !strings.Contains(s.LastError, "rolled back") {
		t.Errorf("status.LastError = %q; want it to say rolled back", s.LastError)
	}
}

func TestTestingBranchDeploysWithTest(t *testing.T) {
	h := newHost(t, nil)
	main := h.commit("main", nil)
	h.start()

	h.opts.Marker = "testing"
	if err := nixtest.WriteFlake(h.up.Work, h.opts); err != nil {
		t.Fatal(err)
	}
	gitRun(t, h.up.Work, "commit", "--quiet", "-am", "on testing")
	tb := gitPush(t, h, "HEAD:refs/heads/testing/"+hostName)
	r := h.sync(false)
	if r.Result != "deployed" {
		t.Fatalf("sync = %+v", r)
	}
	s := h.status()
	if s.Deployed.Commit != tb || s.Deployed.Action != "test" {
		t.Errorf("deployed = %+v; want %s with action test", s.Deployed, tb)
	}
	acts := h.activations()
	if len(acts) != 2 || !strings.HasPrefix(acts[1], "test|") {
		t.Errorf("activations = %q; want switch then test", acts)
	}
	if st := h.state(); st.LastMain != main {
		t.Errorf("LastMain = %s; want main's %s (testing does not move it)", st.LastMain, main)
	}
}

func TestForcePushIsRefused(t *testing.T) {
	h := newHost(t, nil)
	h.commit("one", nil)
	h.opts.Marker = "v2"
	deployed := h.commit("two", nil)
	h.start()

	// Rewrite main to a history that does not contain the deployed commit.
	gitRun(t, h.up.Work, "reset", "--hard", "HEAD~1")
	h.opts.Marker = "v3"
	h.up.WriteFlake(t, h.opts, "rewritten")
	r := h.sync(false)
	if r.OK || !strings.Contains(r.Error, "force-pushed") {
		t.Fatalf("sync after force-push = %+v; want refused as force-pushed", r)
	}
	if s := h.status(); s.Deployed.Commit != deployed {
		t.Errorf("deployed = %s; want still %s", s.Deployed.Commit, deployed)
	}
	if got := h.activations(); len(got) != 1 {
		t.Errorf("activations = %q; want one", got)
	}
	if r := h.sync(false); r.Result != "refused" && !strings.Contains(r.Error, "force-pushed") {
		t.Errorf("second sync after force-push = %+v; want still refused", r)
	}

	// The operator rewrote main on purpose: sync --force accepts it.
	rewritten := gitRun(t, h.up.Work, "rev-parse", "HEAD")
	if r := h.sync(true); r.Result != "deployed" {
		t.Fatalf("sync --force = %+v; want the rewritten main deployed", r)
	}
	if st := h.state(); st.LastMain != rewritten || st.Deployed.Commit != rewritten {
		t.Errorf("state after sync --force: lastMain %s deployed %s; want %s", st.LastMain, st.Deployed.Commit, rewritten)
	}
}

func TestRestartsIntoNewAgent(t *testing.T) {
	h := newHost(t, nil)
	h.selfPath = h.dir + "/old-agent"
	os.WriteFile(h.selfPath, []byte("#!/bin/sh\n"), 0o755)
	h.commit("first", nil)
	h.start()
	select {
	case err := <-h.done:
		t.Fatalf("daemon exited after a deploy without a new agent: %v", err)
	case <-time.After(200 * time.Millisecond):
	}

	h.opts.Agent = "agent v2"
	c2 := h.commit("upgrade the agent", nil)
	h.client().Sync(context.Background(), false, false)
	select {
	case err := <-h.done:
		if !errors.Is(err, daemon.ErrRestart) {
			t.Fatalf("Run = %v; want ErrRestart", err)
		}
		h.cancel = nil
	case <-time.After(time.Minute):
		t.Fatal("daemon kept running after deploying a new agent")
	}
	if st := h.state(); st.Deployed == nil || st.Deployed.Commit != c2 || st.Pending != nil {
		t.Errorf("state after restart request: deployed %+v pending %+v; want %s confirmed", st.Deployed, st.Pending, c2)
	}
}
