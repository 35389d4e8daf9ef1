package gitsync

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
)

// fetchTipTree makes the whole tree of commit complete in the copy. With
// haves (heads whose trees are complete) it fetches what changed since
// them, commits, trees and blobs, as a fetch always did; then, or without
// haves (a new copy), a fetch of depth 1 without filter brings the whole
// tree. The remote's shallow answer is not recorded: the copy has the
// commits.
func (s *session) fetchTipTree(ctx context.Context, l *local, commit plumbing.Hash, haves []plumbing.Hash, lim Limits) error {
	for _, shallow := range []bool{len(haves) == 0, true} {
		complete, err := l.treeComplete(commit)
		if err != nil || complete {
			return err
		}
		req, _ := s.request(commit, haves, "")
		if shallow {
			if !s.caps.Supports(capability.Shallow) {
				return fmt.Errorf("fetching %s: the remote does not support shallow fetches: cannot fetch the tree of %s alone", s.shown, commit)
			}
			req.Haves = nil
			req.Depth = packp.DepthCommits(1)
			_ = req.Capabilities.Set(capability.Shallow)
		}
		if err := s.receive(ctx, l.dir, req, lim); err != nil {
			return err
		}
		l.st.Reindex()
	}
	complete, err := l.treeComplete(commit)
	if err == nil && !complete {
		err = fmt.Errorf("fetching %s: the tree of %s is still incomplete", s.shown, commit)
	}
	return err
}

// treeComplete reports whether every tree and blob under commit's tree is
// in the copy. A missing commit is an error.
func (l *local) treeComplete(commit plumbing.Hash) (bool, error) {
	c, err := object.GetCommit(l.st, commit)
	if err != nil {
		return false, fmt.Errorf("reading commit %s: %w", commit, err)
	}
	seen := map[plumbing.Hash]bool{}
	queue := []plumbing.Hash{c.TreeHash}
	for len(queue) > 0 {
		h := queue[0]
		queue = queue[1:]
		t, err := object.GetTree(l.st, h)
		if errors.Is(err, plumbing.ErrObjectNotFound) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("reading tree %s: %w", h, err)
		}
		for _, e := range t.Entries {
			switch {
			case seen[e.Hash] || e.Mode == filemode.Submodule:
			case e.Mode == filemode.Dir:
				queue = append(queue, e.Hash)
			case !l.has(e.Hash):
				return false, nil
			}
			seen[e.Hash] = true
		}
	}
	return true, nil
}

// EvalDir makes the whole tree of commit present in the copy and returns
// a directory whose .git file points at the copy, creating it beside Dir
// when missing. Nix evaluates git+file://<dir>?ref=<branch>&rev=<commit>
// by reading the copy in place (Nix 2.8: git archive, git log and git
// rev-list in the directory; Nix with libgit2: the same objects through
// it), where for the bare copy itself it would clone every object into its
// cache. self.rev, lastModified and revCount are the same either way.
//
// A TipTrees copy keeps the trees of the heads it fetched; a commit whose
// tree is not there (the deployed commit after a re-clone) gets it from
// the remote, a fetch of depth 1 that needs a remote allowing wants of any
// reachable commit (Forgejo does; git http-backend needs
// uploadpack.allowReachableSHA1InWant). A copy that keeps everything is
// not looked at. A commit not in the copy wraps ErrUnknownCommit.
func (r *Repo) EvalDir(ctx context.Context, commit string) (string, error) {
	h, err := parseHash(commit)
	if err != nil {
		return "", err
	}
	if r.Contents != Everything {
		r.mu.Lock()
		err := r.ensureTree(ctx, h)
		r.mu.Unlock()
		if err != nil {
			return "", err
		}
	}
	return r.makeEvalDir()
}

// EvalDirOf is the directory EvalDir returns for the copy in dir.
func EvalDirOf(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = filepath.Clean(dir)
	}
	return filepath.Join(filepath.Dir(abs), "."+filepath.Base(abs)+".eval")
}

// ensureTree fetches the tree of commit h when the copy lacks part of it.
func (r *Repo) ensureTree(ctx context.Context, h plumbing.Hash) error {
	l, err := openLocal(r.Dir)
	if err != nil {
		return fmt.Errorf("opening %s: %w", r.Dir, err)
	}
	defer l.Close()
	complete, err := l.treeComplete(h)
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		return fmt.Errorf("reading commit %s: %w", h, ErrUnknownCommit)
	}
	if err != nil || complete {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout())
	defer cancel()
	s, _, err := r.advertise(ctx)
	if err != nil {
		return err
	}
	r.known = nil // the copy gets a new pack: the next poll checks it again
	if err := removeTempPacks(r.Dir); err != nil {
		return err
	}
	if err := s.fetchTipTree(ctx, l, h, nil, r.Limits.orDefault()); err != nil {
		return fmt.Errorf("fetching the tree of %s: %w", h, err)
	}
	return nil
}

// makeEvalDir creates EvalDirOf(r.Dir) with its .git file when missing.
func (r *Repo) makeEvalDir() (string, error) {
	dir := EvalDirOf(r.Dir)
	abs, err := filepath.Abs(r.Dir)
	if err != nil {
		return "", err
	}
	want := "gitdir: " + abs + "\n"
	if b, err := os.ReadFile(filepath.Join(dir, ".git")); err == nil && string(b) == want {
		return dir, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("making %s: %w", dir, err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".git"), []byte(want), 0o644); err != nil {
		return "", fmt.Errorf("making %s: %w", dir, err)
	}
	return dir, nil
}
