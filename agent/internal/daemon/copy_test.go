package daemon_test

import (
	"os/exec"
	"testing"
)

// A builder-mode host that waits for releases keeps commits only (the
// server applies the tree:0 filter): it verifies and deploys the builder's
// releases while its copy holds no tree of main.
func TestWaitingBuilderHostKeepsCommitsOnly(t *testing.T) {
	h, fb := newBuilderHost(t, "30m", "wait", nil)
	first := fb.commit(h, "v1", "first")
	fb.release(t, first)
	h.start()
	if d := h.status().Deployed; d == nil || d.Commit != first || d.Source != "builder" {
		t.Fatalf("deployed %+v; want %s from the builder", d, first)
	}
	second := fb.commit(h, "v2", "second")
	fb.release(t, second)
	if r := h.sync(false); !r.OK || r.Result != "deployed" {
		t.Fatalf("sync of %s = %+v; want deployed", second, r)
	}
	for _, c := range []string{first, second} {
		if err := exec.Command("git", "-C", h.cfg.RepoDir(), "cat-file", "-e", c+"^{tree}").Run(); err == nil {
			t.Errorf("the tree of %s is in the copy of a host that never evaluates", c)
		}
		if err := exec.Command("git", "-C", h.cfg.RepoDir(), "cat-file", "-e", c).Run(); err != nil {
			t.Errorf("commit %s is not in the copy: %v", c, err)
		}
	}
}
