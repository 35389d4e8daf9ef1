package gitsync

import (
	"fmt"
	"slices"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
)

// Contents says which objects of the tracked branches a copy keeps.
type Contents int

const (
	// Everything keeps every commit, tree and blob of the tracked
	// branches: what a copy made before Contents existed holds, and what
	// the builder keeps (it may evaluate any verified commit).
	Everything Contents = iota
	// CommitsOnly keeps the commits of the tracked branches and no trees
	// or blobs (partial-clone filter tree:0), except for WholeBranches: what
	// a host needs to check signatures and ancestry when it never
	// evaluates (builder mode without local fallback). The copy grows by
	// a few hundred bytes a commit instead of by every file changed.
	CommitsOnly
	// TipTrees keeps the commits of the tracked branches (tree:0) and the
	// whole tree of each branch's head as fetched (a shallow fetch of
	// depth 1 without filter), WholeBranches whole: what a host that
	// evaluates its heads needs when Nix reads the copy in place, which it
	// does for a directory whose .git file points at the copy (see
	// EvalDir), not for the bare copy itself (Nix clones a bare repository
	// and needs every object). Trees of earlier heads stay; EvalDir fetches
	// the tree of any other commit when it is asked for.
	TipTrees
)

// configValue is how a copy's config records its Contents
// ([avalanche] contents = ...); a copy without it keeps everything.
func (c Contents) configValue() string {
	switch c {
	case CommitsOnly:
		return "commits"
	case TipTrees:
		return "tip-trees"
	}
	return "everything"
}

func (c Contents) configSection() string {
	return "[avalanche]\n\tcontents = " + c.configValue() + "\n"
}

// checkContents refuses a copy that keeps other Contents than want: a copy
// made before an upgrade (everything) is made anew with commits only, and
// a commits-only copy lacks what an evaluating host needs.
func (l *local) checkContents(want Contents) error {
	cfg, err := l.repo.Config()
	if err != nil {
		return fmt.Errorf("reading config: %w", err)
	}
	got := cfg.Raw.Section("avalanche").Option("contents")
	if got == "" {
		got = Everything.configValue()
	}
	if got != want.configValue() {
		return fmt.Errorf("copy keeps %s, %s wanted", got, want.configValue())
	}
	return nil
}

// filter returns the partial-clone filter for branch b, "" for none.
func (r *Repo) filter(b string) packp.Filter {
	if r.Contents == Everything || slices.Contains(r.WholeBranches, b) {
		return ""
	}
	return packp.FilterTreeDepth(0)
}

// treeless returns the branches whose trees the copy does not keep.
func (r *Repo) treeless() map[string]bool {
	out := map[string]bool{}
	for _, b := range r.Branches {
		if r.Contents == CommitsOnly && r.filter(b) != "" {
			out[b] = true
		}
	}
	return out
}

// haves returns the local heads of the tracked branches fetched with the
// same filter: telling the remote "I have this commit" promises every
// object the filter keeps below it.
func (r *Repo) haves(l *local, filter packp.Filter) []plumbing.Hash {
	var out []plumbing.Hash
	for _, b := range r.Branches {
		if r.filter(b) != filter {
			continue
		}
		if h, ok, err := l.head(b); err == nil && ok && !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	return out
}

// refuse remembers that branch e.Branch at e.Commit broke a limit, so
// later polls do not fetch it again while the branch stays there.
func (r *Repo) refuse(e *TooLargeError) {
	if r.refused == nil {
		r.refused = map[string]*TooLargeError{}
	}
	r.refused[e.Branch] = e
}

func (r *Repo) isRefused(b string, h plumbing.Hash) bool {
	e, ok := r.refused[b]
	return ok && e.Commit == h.String()
}

// unrefused returns remote without the refused branches, which a copy
// leaves where they were.
func (r *Repo) unrefused(remote map[string]plumbing.Hash) map[string]plumbing.Hash {
	out := make(map[string]plumbing.Hash, len(remote))
	for b, h := range remote {
		if !r.isRefused(b, h) {
			out[b] = h
		}
	}
	return out
}

// withRefusals takes the refused branches out of res: the first branch's
// refusal is the error, the others are listed in res.Refused. Refusals of
// branches that moved on are forgotten.
func (r *Repo) withRefusals(res FetchResult, remote map[string]plumbing.Hash) (FetchResult, error) {
	for b := range r.refused {
		if !r.isRefused(b, remote[b]) {
			delete(r.refused, b)
		}
	}
	for _, b := range r.Branches {
		e, ok := r.refused[b]
		if !ok {
			continue
		}
		if b == r.Branches[0] {
			return FetchResult{}, e
		}
		delete(res.Heads, b)
		res.Refused = append(res.Refused, e)
	}
	return res, nil
}
