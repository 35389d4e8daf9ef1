package gitsync

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// IsAncestor reports whether ancestor is reachable from commit by
// following parents; a commit counts as its own ancestor. The walk stops
// as soon as ancestor is found and checks ctx as it goes. Answers are
// remembered: they cannot change. When the repository does not have
// ancestor, the error wraps ErrUnknownCommit.
func (r *Repo) IsAncestor(ctx context.Context, ancestor, commit string) (bool, error) {
	want, err := parseHash(ancestor)
	if err != nil {
		return false, err
	}
	start, err := parseHash(commit)
	if err != nil {
		return false, err
	}
	if want == start {
		return true, nil
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if found, ok := r.memo.ancestor(want, start); ok {
		return found, nil
	}
	l, err := openLocal(r.Dir)
	if err != nil {
		return false, fmt.Errorf("opening %s: %w", r.Dir, err)
	}
	defer l.Close()
	if _, err := l.repo.CommitObject(want); err != nil {
		if errors.Is(err, plumbing.ErrObjectNotFound) {
			return false, fmt.Errorf("reading commit %s: %w", want, ErrUnknownCommit)
		}
		return false, fmt.Errorf("reading commit %s: %w", want, err)
	}
	found, err := l.reaches(ctx, start, want)
	if err != nil {
		return false, err
	}
	r.memo.rememberAncestor(want, start, found)
	return found, nil
}

// reaches walks the history of start breadth-first looking for want.
func (l *local) reaches(ctx context.Context, start, want plumbing.Hash) (bool, error) {
	seen := map[plumbing.Hash]bool{start: true}
	queue := []plumbing.Hash{start}
	for n := 0; len(queue) > 0; n++ {
		if n%1024 == 0 && ctx.Err() != nil {
			return false, ctx.Err()
		}
		h := queue[0]
		queue = queue[1:]
		c, err := object.GetCommit(l.st, h)
		if err != nil {
			return false, fmt.Errorf("reading commit %s: %w", h, err)
		}
		for _, p := range c.ParentHashes {
			if p == want {
				return true, nil
			}
			if !seen[p] {
				seen[p] = true
				queue = append(queue, p)
			}
		}
	}
	return false, nil
}

// parseHash accepts a full hex object name.
func parseHash(s string) (plumbing.Hash, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(plumbing.ZeroHash) {
		return plumbing.ZeroHash, fmt.Errorf("invalid commit hash %q", s)
	}
	return plumbing.Hash(b), nil
}
