package daemon_test

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/status"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
)

func waitStatus(t *testing.T, h *host, what string, cond func(s status.Status) bool) status.Status {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		s := h.status()
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; status %+v", what, s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLocalRepositoryCommitDeploys: on the laptop the repository is a local
// checkout; a commit there deploys without waiting for a poll (1h here).
func TestLocalRepositoryCommitDeploys(t *testing.T) {
	h := newHost(t, nil)
	// Point the agent at the work tree itself, not the served bare repo.
	rewriteConfig(t, h, func(c map[string]any) { c["repository"] = map[string]any{"url": h.up.Work} })
	h.commit("first", nil)
	h.start()
	h.opts.Marker = "laptop edit"
	if err := nixtest.WriteFlake(h.up.Work, h.opts); err != nil {
		t.Fatal(err)
	}
	gitRun(t, h.up.Work, "commit", "--quiet", "-am", "local commit")
	local := gitRun(t, h.up.Work, "rev-parse", "HEAD")
	start := time.Now()
	s := waitStatus(t, h, "the local commit to deploy", func(s status.Status) bool {
		return s.Deployed != nil && s.Deployed.Commit == local
	})
	t.Logf("local commit deployed %v after the commit (poll interval 1h)", time.Since(start))
	if s.Deployed.Result != "deployed" {
		t.Errorf("deployed = %+v; want deployed", s.Deployed)
	}
}

// TestConfigReload: a valid changed config applies without a restart; an
// invalid one is refused and the running config kept.
func TestConfigReload(t *testing.T) {
	h := newHost(t, nil)
	h.commit("first", nil)
	h.start()
	rewriteConfig(t, h, func(c map[string]any) { c["hostname"] = "renamed" })
	waitStatus(t, h, "the new hostname", func(s status.Status) bool { return s.Hostname == "renamed" })

	if err := os.WriteFile(h.cfgPath, []byte(`{"version":1,"hostname":"bad name!"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	h.client().Sync(t.Context(), true, false)
	time.Sleep(300 * time.Millisecond)
	if s := h.status(); s.Hostname != "renamed" || s.State == status.Failed {
		t.Errorf("after an invalid config: hostname %q state %q; want the running config kept", s.Hostname, s.State)
	}
}

// rewriteConfig loads the host's config JSON, changes it and writes it
// back atomically, as the NixOS module's switch does.
func rewriteConfig(t *testing.T, h *host, change func(c map[string]any)) {
	t.Helper()
	b, err := os.ReadFile(h.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	change(c)
	b, _ = json.MarshalIndent(c, "", "  ")
	tmp := h.cfgPath + ".new"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, h.cfgPath); err != nil {
		t.Fatal(err)
	}
	if h.d == nil { // not started yet: reload the harness's copy too
		h.cfg = loadConfig(t, h.cfgPath)
	}
}

// TestLocalTestingBranchCreatedAfterStart: a testing/<host> branch pushed
// to a local bare repository after the agent started deploys without
// waiting for a poll, and so does its next push (its refs/heads/testing
// directory appeared only after the watch began).
func TestLocalTestingBranchCreatedAfterStart(t *testing.T) {
	h := newHost(t, nil)
	rewriteConfig(t, h, func(c map[string]any) { c["repository"] = map[string]any{"url": h.up.Bare} })
	h.commit("first", nil)
	h.start()
	h.opts.Marker = "on the testing branch"
	if err := nixtest.WriteFlake(h.up.Work, h.opts); err != nil {
		t.Fatal(err)
	}
	gitRun(t, h.up.Work, "commit", "--quiet", "-am", "testing commit")
	gitRun(t, h.up.Work, "push", "--quiet", h.up.Bare, "HEAD:refs/heads/testing/"+hostName)
	testing := gitRun(t, h.up.Work, "rev-parse", "HEAD")
	waitStatus(t, h, "the testing commit to deploy", func(s status.Status) bool {
		return s.Deployed != nil && s.Deployed.Commit == testing
	})
	// The branch's next push: refs/heads/testing existed only since then.
	h.opts.Marker = "on the testing branch, again"
	if err := nixtest.WriteFlake(h.up.Work, h.opts); err != nil {
		t.Fatal(err)
	}
	gitRun(t, h.up.Work, "commit", "--quiet", "-am", "testing commit 2")
	gitRun(t, h.up.Work, "push", "--quiet", h.up.Bare, "HEAD:refs/heads/testing/"+hostName)
	again := gitRun(t, h.up.Work, "rev-parse", "HEAD")
	waitStatus(t, h, "the second testing commit to deploy", func(s status.Status) bool {
		return s.Deployed != nil && s.Deployed.Commit == again
	})
}
