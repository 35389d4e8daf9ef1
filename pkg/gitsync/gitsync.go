// Package gitsync keeps a bare copy of the fleet repository up to date and
// verifies commits before they are deployed.
//
// Fetch first asks the remote for its refs and writes nothing at all when
// the tracked branches did not move, so polling does not wear out SD cards;
// when, besides, the copy is the one the last Fetch checked (its files keep
// their identity), it reads nothing either.
// A missing or corrupt local copy is re-cloned into a sibling directory and
// swapped into place, so a crash leaves either the old or the new copy.
// The package never logs; errors wrap the sentinels below for errors.Is.
package gitsync

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
)

// DefaultTimeout bounds a whole Fetch when Repo.Timeout is zero.
const DefaultTimeout = 2 * time.Minute

// Remote says where the fleet repository lives and how to authenticate.
type Remote struct {
	// URL is https://..., ssh://..., scp-like user@host:path, or a local
	// path (absolute, or file://). Local paths need git-upload-pack.
	URL string
	// TokenFile holds an HTTPS token (whitespace trimmed), sent as the
	// basic auth password with user name "avalanche".
	TokenFile string
	// SSHKeyFile is the private key for SSH remotes.
	SSHKeyFile string
	// KnownHostsFile is required for SSH remotes: the host key must be
	// listed there (no trust on first use).
	KnownHostsFile string
}

// Repo is a bare local copy of selected branches of a Remote. Its methods
// may be called from several goroutines; Fetch calls run one at a time.
type Repo struct {
	// Dir is the bare repository path; its parent must be writable.
	Dir    string
	Remote Remote
	// Branches are the only branches fetched, e.g. "main", "testing/eagle".
	// The first must exist on the remote; the others may be missing.
	Branches []string
	// Timeout bounds a whole Fetch; zero means DefaultTimeout.
	Timeout time.Duration
	// Limits bound what a Fetch takes in; zero fields mean DefaultLimits.
	Limits Limits
	// Contents says which objects the copy keeps; the zero value keeps all.
	Contents Contents
	// WholeBranches are fetched with every object even when Contents
	// keeps only commits (the builder's release branch).
	WholeBranches []string

	mu      sync.Mutex   // serialises Fetch
	known   *fingerprint // the copy the last Fetch checked; nil: check again
	memo    memo         // answers that cannot change
	refused map[string]*TooLargeError
}

// FetchResult describes the local state after a Fetch.
type FetchResult struct {
	// Heads maps each tracked branch that exists on the remote to its
	// commit hash (hex), as now stored locally.
	Heads map[string]string
	// Changed is true when objects or refs were written, or a fetch was
	// tried and refused (Refused then says which, once: later polls of the
	// same refused head report it with Changed false).
	Changed bool
	// Recloned is true when the local copy was missing or corrupt, or
	// kept other Contents, and was created anew.
	Recloned bool
	// Refused lists the tracked branches other than the first whose new
	// commits were over a limit: they are left out of Heads until they
	// move on. (A refused first branch is Fetch's error.)
	Refused []*TooLargeError
	// Unfiltered is true when Contents asked for commits only and the
	// remote does not support partial-clone filters: everything was fetched.
	Unfiltered bool
}

// Fetch brings the tracked branches of the local copy in line with the
// remote. Branches are force-updated, so a force-push is visible; callers
// refuse it with IsAncestor.
//
// A poll that finds the remote where the copy already is, and the copy as
// the last Fetch checked it (no file replaced, rewritten, added or removed
// since), reads nothing from the disk: it only stats the files the check
// read.
func (r *Repo) Fetch(ctx context.Context) (FetchResult, error) {
	if len(r.Branches) == 0 {
		return FetchResult{}, errors.New("fetching: no branches configured")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, r.timeout())
	defer cancel()
	s, remote, err := r.advertise(ctx)
	if err != nil {
		return FetchResult{}, err
	}
	if r.known.still(r, remote) {
		return r.withRefusals(FetchResult{Heads: hexHeads(remote)}, remote)
	}
	r.known = nil
	if err := removeStale(r.Dir); err != nil {
		return FetchResult{}, err
	}
	started := time.Now()
	l, got, err := r.openChecked()
	if err != nil {
		res, err := r.reclone(ctx, s, remote)
		if err != nil {
			return res, err
		}
		return r.withRefusals(res, remote)
	}
	defer l.Close()
	res, err := r.update(ctx, s, l, remote)
	if err != nil {
		return res, err
	}
	if !res.Changed {
		r.known = takeFingerprint(r.Dir, r.Branches, remote, got.packs, got.objects, started)
	}
	return r.withRefusals(res, remote)
}

// openChecked opens the copy in Dir and checks it: a copy that keeps other
// Contents than asked for counts as unusable and is made anew.
func (r *Repo) openChecked() (*local, checked, error) {
	l, err := openLocal(r.Dir)
	if err != nil {
		return nil, checked{}, err
	}
	got, err := l.check(r.Dir, r.Branches, r.treeless())
	if err == nil {
		err = l.checkContents(r.Contents)
	}
	if err != nil {
		l.Close()
		return nil, checked{}, err
	}
	return l, got, nil
}

// update fetches into an existing healthy copy, unless it is up to date.
func (r *Repo) update(ctx context.Context, s *session, l *local, remote map[string]plumbing.Hash) (FetchResult, error) {
	ok, err := l.upToDate(r.Branches, r.unrefused(remote))
	if err != nil {
		return FetchResult{}, err
	}
	if ok {
		return FetchResult{Heads: hexHeads(remote)}, nil
	}
	if err := removeTempPacks(r.Dir); err != nil {
		return FetchResult{}, err
	}
	unfiltered, err := r.fetchInto(ctx, s, l, remote)
	if err != nil {
		if ctx.Err() != nil || classOf(ctx, err) != nil {
			return FetchResult{}, err
		}
		// Not the network's fault: most likely the local copy is damaged
		// in a way check could not see. Start over.
		l.Close()
		return r.reclone(ctx, s, remote)
	}
	heads, err := l.heads(r.Branches)
	if err != nil {
		return FetchResult{}, err
	}
	return FetchResult{Heads: heads, Changed: true, Unfiltered: unfiltered}, nil
}

// fetchInto fetches the tracked branches present on the remote, one pack
// per branch that moved, and drops local branches that the remote no
// longer has. A branch whose pack breaks a limit is left where it was and
// remembered as refused. unfiltered reports a remote that could not apply
// the partial-clone filter.
func (r *Repo) fetchInto(ctx context.Context, s *session, l *local, remote map[string]plumbing.Hash) (unfiltered bool, err error) {
	lim := r.Limits.orDefault()
	for _, b := range r.Branches {
		want, ok := remote[b]
		if !ok || r.isRefused(b, want) {
			continue
		}
		filter := r.filter(b)
		tipTree := r.Contents == TipTrees && filter != ""
		u, err := s.fetchBranch(ctx, l, b, want, r.haves(l, filter), filter, tipTree, lim)
		var le *limitError
		if errors.As(err, &le) {
			r.refuse(&TooLargeError{Branch: b, Commit: want.String(), Limit: le.limit, Max: le.max, Size: le.size})
			continue
		}
		if err != nil {
			return false, err
		}
		unfiltered = unfiltered || u
	}
	if _, err := l.prune(r.Branches, remote); err != nil {
		return false, fmt.Errorf("updating %s: %w", r.Dir, err)
	}
	return unfiltered, nil
}

func hexHeads(m map[string]plumbing.Hash) map[string]string {
	out := make(map[string]string, len(m))
	for b, h := range m {
		out[b] = h.String()
	}
	return out
}

// tempPrefix names the sibling directories used while re-cloning.
func tempPrefix(dir string) string {
	return filepath.Join(filepath.Dir(dir), "."+filepath.Base(dir)+".tmp-")
}

// removeTempPacks deletes pack files that an interrupted fetch left
// half-written. Fetch calls it only when it is about to write anyway.
func removeTempPacks(dir string) error {
	tmp, err := filepath.Glob(filepath.Join(dir, "objects", "pack", "tmp_*"))
	if err != nil {
		return err
	}
	idx, err := filepath.Glob(filepath.Join(dir, "objects", "pack", "pack-*.idx.tmp"))
	if err != nil {
		return err
	}
	tmp = append(tmp, idx...)
	for _, p := range tmp {
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("removing interrupted pack: %w", err)
		}
	}
	return nil
}

// removeStale deletes sibling directories left by an interrupted re-clone.
// It writes nothing when there are none.
func removeStale(dir string) error {
	stale, err := filepath.Glob(tempPrefix(dir) + "*")
	if err != nil {
		return err
	}
	for _, p := range stale {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("removing stale clone: %w", err)
		}
	}
	return nil
}

// Reachable asks the remote for its refs (one ref advertisement) and writes
// nothing: the health check after a switch that the host can still reach
// its repository.
func (r *Repo) Reachable(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout())
	defer cancel()
	_, _, err := r.advertise(ctx)
	return err
}

func (r *Repo) timeout() time.Duration {
	if r.Timeout <= 0 {
		return DefaultTimeout
	}
	return r.Timeout
}

// advertise opens a session and asks the remote for the tracked branches'
// heads: the one ref advertisement every poll costs.
func (r *Repo) advertise(ctx context.Context) (*session, map[string]plumbing.Hash, error) {
	s, err := r.Remote.newSession(ctx)
	if err != nil {
		return nil, nil, err
	}
	heads, err := s.listHeads(ctx, r.Branches)
	if err != nil {
		return nil, nil, err
	}
	return s, heads, nil
}
