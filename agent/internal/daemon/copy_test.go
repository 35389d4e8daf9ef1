package daemon_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

// An evaluating host whose copy predates the upgrade (every object, no
// [avalanche] contents entry) remakes it on its first fetch, without an
// operator, as the commits plus the trees of the heads it fetched; it
// evaluates and deploys through the copy's evaluation directory, and Nix no
// longer clones the copy into its own cache (~/.cache/nix/gitv3).
func TestEvaluatingHostKeepsTipTrees(t *testing.T) {
	h := newHost(t, nil)
	h.commit("one", nil)
	h.opts.Marker = "v2"
	middle := h.commit("two", nil)
	if out, err := exec.Command("git", "clone", "-q", "--bare", h.up.Bare, h.cfg.RepoDir()).CombinedOutput(); err != nil {
		t.Fatalf("making the copy an agent before the upgrade kept: %v\n%s", err, out)
	}
	h.opts.Marker = "v3"
	third := h.commit("three", nil)
	h.start()
	if d := h.status().Deployed; d == nil || d.Commit != third {
		t.Fatalf("deployed %+v; want %s", d, third)
	}
	h.opts.Marker = "v4"
	fourth := h.commit("four", nil)
	if r := h.sync(false); !r.OK || r.Result != "deployed" {
		t.Fatalf("sync of %s = %+v; want deployed", fourth, r)
	}
	cfg, err := exec.Command("git", "-C", h.cfg.RepoDir(), "config", "avalanche.contents").Output()
	if got := strings.TrimSpace(string(cfg)); err != nil || got != "tip-trees" {
		t.Errorf("the copy's avalanche.contents = %q, %v; want tip-trees (remade)", got, err)
	}
	for c, want := range map[string]bool{middle: false, third: true, fourth: true} {
		err := exec.Command("git", "-C", h.cfg.RepoDir(), "cat-file", "-e", c+"^{tree}").Run()
		if got := err == nil; got != want {
			t.Errorf("the tree of %s in the copy: %v; want %v (only the trees of fetched heads)", c, got, want)
		}
		if err := exec.Command("git", "-C", h.cfg.RepoDir(), "cat-file", "-e", c).Run(); err != nil {
			t.Errorf("commit %s is not in the copy: %v", c, err)
		}
	}
	gitv3 := filepath.Join(h.dir, "cache", "nix", "gitv3")
	if _, err := os.Stat(gitv3); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Nix cloned the copy into %s (stat: %v); want it read in place", gitv3, err)
	}
}
