package builder

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/fault"
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
// Errors: release.ErrNotYet when no release of commit is there yet, and
// release.ErrUntrusted when the branch holds only releases of commit that
// no trusted key signed (wait for the builder's, or evaluate locally after
// deploy.builderTimeout); a commit fault (IsCommitFault: the trusted
// release names no system of this host, or the builder found the commit
// does not build) never to retry; anything else is a problem reading the
// local repository (retry).
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
// Its failures are never the commit's: the trusted builder copied the
// closure, signed, before it published the release. A path missing from
// the cache, a narinfo no trusted key signed, or a broken NAR is the
// cache's trouble, classified fault.Transient and retried with backoff
// until the cache (or the builder's next upload) mends it; so are an
// unreachable cache and a busy Nix daemon. A full disk is fault.Host;
// context errors stay as they are.
func (s *Source) Realise(ctx context.Context, t Target, gcRoot string, progress func(rebuild.SubstituteProgress)) (string, error) {
	out, err := s.Nix.Substitute(ctx, s.Cache, t.OutPath, gcRoot, progress)
	if err != nil && ctx.Err() == nil && isCacheTrouble(err) {
		return "", fault.New(fault.Transient, fmt.Errorf("the cache's trouble, not the commit's (retried): %w", err))
	}
	return out, err
}

// isCacheTrouble reports a substitution that failed because of what the
// cache serves, not because of the release.
func isCacheTrouble(err error) bool {
	return errors.Is(err, rebuild.ErrNotInCache) || errors.Is(err, rebuild.ErrUntrustedPath) ||
		errors.Is(err, rebuild.ErrSubstitute)
}

// IsCommitFault reports whether an error from Resolve or Realise means the
// commit's trusted release can never be deployed on this host: refuse the
// commit, do not retry it.
func IsCommitFault(err error) bool {
	return release.IsCommitFault(err)
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
