package fleet

import (
	"errors"
	"fmt"
	"sync"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
)

// history answers "how many commits is main ahead of X" from a local clone.
// It is safe for concurrent use and remembers its answers, since many hosts
// run the same commit.
type history struct {
	repo *git.Repository
	main plumbing.Hash

	mu    sync.Mutex
	count map[string]int
}

// openHistory opens the git repository at dir (or above it) and resolves the
// tip of branch: the remote-tracking origin/<branch> when there is one,
// since that is what was pushed, else the local branch.
func openHistory(dir, branch string) (*history, error) {
	repo, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{DetectDotGit: true})
	if err != nil {
		return nil, fmt.Errorf("opening repository %s: %w", dir, err)
	}
	for _, name := range []plumbing.ReferenceName{
		plumbing.NewRemoteReferenceName("origin", branch),
		plumbing.NewBranchReferenceName(branch),
	} {
		ref, err := repo.Reference(name, true)
		if err == nil {
			return &history{repo: repo, main: ref.Hash(), count: map[string]int{}}, nil
		}
		if !errors.Is(err, plumbing.ErrReferenceNotFound) {
			return nil, fmt.Errorf("resolving %s: %w", name, err)
		}
	}
	return nil, fmt.Errorf("resolving %s in %s: neither origin/%[1]s nor %[1]s exists", branch, dir)
}

// Behind counts the commits reachable from main but not from deployed, like
// `git rev-list --count deployed..main`.
func (h *history) Behind(deployed string) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if n, ok := h.count[deployed]; ok {
		return n, nil
	}
	n, err := h.behind(deployed)
	if err == nil {
		h.count[deployed] = n
	}
	return n, err
}

func (h *history) behind(deployed string) (int, error) {
	if !plumbing.IsHash(deployed) {
		return 0, fmt.Errorf("counting commits behind: %q is not a commit id", deployed)
	}
	from := plumbing.NewHash(deployed)
	if _, err := h.repo.CommitObject(from); err != nil {
		return 0, fmt.Errorf("counting commits behind: commit %s: %w", deployed, err)
	}
	seen, err := h.ancestors(from, nil)
	if err != nil {
		return 0, err
	}
	ahead, err := h.ancestors(h.main, seen)
	if err != nil {
		return 0, err
	}
	return len(ahead), nil
}

// ancestors returns start and every commit reachable from it, not walking
// into stop. Parents missing from a shallow clone end the walk there.
func (h *history) ancestors(start plumbing.Hash, stop map[plumbing.Hash]bool) (map[plumbing.Hash]bool, error) {
	out := map[plumbing.Hash]bool{}
	queue := []plumbing.Hash{start}
	for len(queue) > 0 {
		id := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		if out[id] || stop[id] {
			continue
		}
		c, err := h.repo.CommitObject(id)
		if errors.Is(err, plumbing.ErrObjectNotFound) && id != start {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("counting commits behind: commit %s: %w", id, err)
		}
		out[id] = true
		queue = append(queue, c.ParentHashes...)
	}
	return out, nil
}
