package gitsync

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/go-git/go-git/v5/plumbing"
)

// reclone builds a fresh copy in a sibling directory and swaps it into
// place, so Dir always holds either the old or the new complete copy.
func (r *Repo) reclone(ctx context.Context, s *session, remote map[string]plumbing.Hash) (FetchResult, error) {
	parent := filepath.Dir(r.Dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return FetchResult{}, fmt.Errorf("cloning into %s: %w", r.Dir, err)
	}
	tmp, err := os.MkdirTemp(parent, filepath.Base(tempPrefix(r.Dir)))
	if err != nil {
		return FetchResult{}, fmt.Errorf("cloning into %s: %w", r.Dir, err)
	}
	defer os.RemoveAll(tmp) // after a swap this is the old copy
	heads, unfiltered, err := r.cloneInto(ctx, s, tmp, remote)
	if err != nil {
		return FetchResult{}, err
	}
	if err := syncTree(tmp); err != nil {
		return FetchResult{}, fmt.Errorf("cloning into %s: %w", r.Dir, err)
	}
	if err := swapDir(tmp, r.Dir); err != nil {
		return FetchResult{}, fmt.Errorf("cloning into %s: %w", r.Dir, err)
	}
	return FetchResult{Heads: heads, Changed: true, Recloned: true, Unfiltered: unfiltered}, nil
}

// cloneInto initialises a bare repository in dir and fetches into it.
func (r *Repo) cloneInto(ctx context.Context, s *session, dir string, remote map[string]plumbing.Hash) (map[string]string, bool, error) {
	l, err := initLocal(dir, r.Branches[0], r.Contents)
	if err != nil {
		return nil, false, fmt.Errorf("cloning into %s: %w", r.Dir, err)
	}
	defer l.Close()
	unfiltered, err := r.fetchInto(ctx, s, l, remote)
	if err != nil {
		return nil, false, err
	}
	heads, err := l.heads(r.Branches)
	return heads, unfiltered, err
}

// initLocal creates an empty bare repository whose HEAD names branch and
// whose config records the Contents it keeps.
func initLocal(dir, branch string, contents Contents) (*local, error) {
	for _, sub := range []string{"objects/pack", "objects/info", "refs/heads", "refs/tags"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, err
		}
	}
	cfg := "[core]\n\trepositoryformatversion = 0\n\tbare = true\n" + contents.configSection()
	if err := os.WriteFile(filepath.Join(dir, "config"), []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	head := "ref: " + plumbing.NewBranchReferenceName(branch).String() + "\n"
	if err := os.WriteFile(filepath.Join(dir, "HEAD"), []byte(head), 0o644); err != nil {
		return nil, err
	}
	return openLocal(dir)
}

// syncTree flushes every file and directory under root to stable storage,
// so that the swap cannot expose a copy whose data is still in flight.
func syncTree(root string) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := f.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
			return err
		}
		return nil
	})
}
