package builder

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/avalanche-fleet/avalanche/pkg/rebuild"
	"github.com/avalanche-fleet/avalanche/pkg/release"
)

// Substituter is what the host side needs from rebuild.Nix.
type Substituter interface {
	Substitute(ctx context.Context, c rebuild.Cache, outPath, gcRoot string, progress func(rebuild.SubstituteProgress)) (string, error)
}

// Source is builder mode on a host: the system comes from the builder's
// release, never from a local evaluation.
type Source struct {
	// Finder reads releases from the agent's copy of the repository and
	// trusts only the builder's key.
	Finder release.Finder
	// Self is this host: its output, Nix system and system name.
	Self  release.Self
	Cache rebuild.Cache
	Nix   Substituter
}

// Target is the system a release names for this host.
type Target struct {
	// Commit is the main commit; Release the release commit on the branch.
	Commit, Release string
	// Builder is the host that built it; Signer who signed the release.
	Builder, Signer string
	// Built is when the builder published the release.
	Built time.Time
	release.Host
}

// Resolve finds the release of commit, which the caller verified (fast-
// forward, signature) and is about to deploy, and returns this host's
// system in it. It reads only the local repository.
//
// Errors: release.ErrNotYet when no release of commit is there yet (wait,
// or evaluate locally after deploy.builderTimeout); a commit fault
// (IsCommitFault: untrusted release, not this host's system, failed on the
// builder) never to retry; anything else is a problem reading the local
// repository (retry).
func (s *Source) Resolve(ctx context.Context, commit string) (Target, error) {
	found, err := s.Finder.Find(ctx, commit)
	if err != nil {
		return Target{}, err
	}
	h, err := found.For(commit, s.Self)
	if err != nil {
		return Target{}, fmt.Errorf("release %s: %w", short(found.ID), err)
	}
	return Target{Commit: commit, Release: found.ID, Builder: found.Builder, Signer: found.Signer,
		Built: found.Time, Host: h}, nil
}

// Realise substitutes t's system and its closure from the cache, checking
// every narinfo signature first, and registers gcRoot for it. It never
// evaluates or builds. progress, when not nil, gets paths and bytes.
//
// Errors: a commit fault (IsCommitFault: a path missing from the cache or
// not signed by a trusted key, a broken NAR) never to retry;
// rebuild.ErrTransient (cache unreachable, Nix daemon busy) and
// syscall.ENOSPC (full disk) to retry; context errors as they are.
func (s *Source) Realise(ctx context.Context, t Target, gcRoot string, progress func(rebuild.SubstituteProgress)) (string, error) {
	return s.Nix.Substitute(ctx, s.Cache, t.OutPath, gcRoot, progress)
}

// IsCommitFault reports whether an error from Resolve, Realise or
// Builder.Release means the commit's release can never be deployed on
// this host: refuse the commit, do not retry it.
func IsCommitFault(err error) bool {
	return release.IsCommitFault(err) || errors.Is(err, rebuild.ErrNotInCache) ||
		errors.Is(err, rebuild.ErrUntrustedPath) || errors.Is(err, rebuild.ErrSubstitute)
}

// String says where the system comes from, for status: "release of
// <commit> from <builder>".
func (t Target) String() string {
	return "release of " + short(t.Commit) + " from " + t.Builder
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}
