package gitsync

import (
	"context"
	"errors"
	"fmt"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/memory"
)

// ErrPushRejected means the remote branch was not where the pusher expected
// it (someone else pushed first): fetch, rebuild the commit on top of the
// new head and push again.
var ErrPushRejected = errors.New("push rejected: the remote branch moved")

// Push moves branch on the remote from old to commit, which must be in the
// local copy and descend from old; old is "" when the branch should not
// exist yet. It uses the same remote and credentials as Fetch. The update
// is fast-forward only, and the remote checks old atomically, so two
// pushers never overwrite each other: the loser gets ErrPushRejected.
func (r *Repo) Push(ctx context.Context, branch, old, commit string) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout())
	defer cancel()
	want, err := parseHash(commit)
	if err != nil {
		return err
	}
	s, err := r.Remote.newSession(ctx)
	if err != nil {
		return err
	}
	if err := s.expectHead(ctx, branch, old); err != nil {
		return err
	}
	l, err := openLocal(r.Dir)
	if err != nil {
		return fmt.Errorf("opening %s: %w", r.Dir, err)
	}
	defer l.Close()
	ref := plumbing.NewBranchReferenceName(branch)
	err = s.remoteFor(l.st).PushContext(ctx, &git.PushOptions{
		RemoteName: "origin",
		RefSpecs:   []config.RefSpec{config.RefSpec(want.String() + ":" + ref.String())},
		Auth:       s.auth,
	})
	if err == nil || errors.Is(err, git.NoErrAlreadyUpToDate) {
		return nil
	}
	if class := classOf(ctx, err); class != nil || ctx.Err() != nil {
		return fmt.Errorf("pushing %s to %s: %w", branch, s.shown, classify(ctx, err, s.secret))
	}
	// The branch may have moved between our look and the push.
	if moved := s.expectHead(ctx, branch, old); moved != nil {
		return moved
	}
	return fmt.Errorf("pushing %s to %s: %w", branch, s.shown, classify(ctx, err, s.secret))
}

// expectHead asks the remote for branch and returns ErrPushRejected unless
// it points at old ("" meaning absent).
func (s *session) expectHead(ctx context.Context, branch, old string) error {
	refs, err := s.remoteFor(memory.NewStorage()).ListContext(ctx, &git.ListOptions{Auth: s.auth})
	if err != nil && !errors.Is(err, transport.ErrEmptyRemoteRepository) {
		return fmt.Errorf("pushing %s to %s: %w", branch, s.shown, classify(ctx, err, s.secret))
	}
	name := plumbing.NewBranchReferenceName(branch)
	got := ""
	for _, ref := range refs {
		if ref.Name() == name && ref.Type() == plumbing.HashReference {
			got = ref.Hash().String()
		}
	}
	if got != old {
		shown := func(h string) string {
			if h == "" {
				return "absent"
			}
			return h
		}
		return fmt.Errorf("pushing %s to %s: %w: it is %s, expected %s", branch, s.shown, ErrPushRejected, shown(got), shown(old))
	}
	return nil
}
