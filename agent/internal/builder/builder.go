// Package builder is builder mode, both sides of it.
//
// The builder role (Builder) runs on a strong host: for each verified main
// commit it evaluates every nixosConfigurations output, builds what changed
// with plain Nix builds (so nix.buildMachines spreads them over the remote
// builders), signs the closures with the fleet cache key, copies them to
// the binary cache and publishes a signed release on the release branch.
//
// The host side (Source) runs on small hosts instead of evaluating: it finds
// the release of the commit the host verified, checks it, and substitutes
// the host's system from the cache.
package builder

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/failpoint"
	"github.com/avalanche-fleet/avalanche/agent/internal/fault"
	"github.com/avalanche-fleet/avalanche/pkg/gitsync"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild"
	"github.com/avalanche-fleet/avalanche/pkg/release"
	"golang.org/x/crypto/ssh"
)

// Nix is what the builder needs from rebuild.Nix.
type Nix interface {
	Outputs(ctx context.Context, flakeRef string) ([]string, error)
	EvaluateHost(ctx context.Context, flakeRef, output string) (rebuild.HostEvaluation, error)
	Build(ctx context.Context, ev rebuild.Evaluation, gcRoot string) (string, error)
	Sign(ctx context.Context, keyFile, path string) error
	Copy(ctx context.Context, storeURL, path string) error
	MissingFrom(ctx context.Context, storeURL, path string) ([]string, error)
}

// Cache is the fleet binary cache the builder copies closures to: a Nix
// store URL (storeCache) or an S3 bucket (S3Cache).
type Cache interface {
	// Copy copies path and its closure; the paths it holds are skipped.
	Copy(ctx context.Context, path string) error
	// MissingFrom returns the paths of path's closure the cache does not
	// hold whole (path itself when it is not in the local store). Its
	// errors are never a path's fault.
	MissingFrom(ctx context.Context, path string) ([]string, error)
}

// Git is what the builder needs from the fleet repository (gitsync.Repo).
type Git interface {
	Fetch(ctx context.Context) (gitsync.FetchResult, error)
	Push(ctx context.Context, branch, old, commit string) error
}

// DefaultParallelism is how many hosts are evaluated and built at once
// when Parallelism is zero: a NixOS evaluation takes 1-2 GB.
const DefaultParallelism = 2

// publishAttempts bounds how often Release retries a push that lost a race.
const publishAttempts = 3

// Builder is the builder role. Set the fields, then call Release for each
// verified main commit, after the fetch and from one goroutine (it writes
// objects into RepoDir); calling it again after an error resumes the work.
// Progress may be called at any time.
type Builder struct {
	// Name is the builder's host name, recorded in releases.
	Name string
	// RepoDir is the bare repository Git fetches into (gitsync.Repo.Dir);
	// Branch is the main branch there.
	RepoDir, Branch string
	// ReleaseBranch is where releases go; empty means release.Branch. Git
	// must fetch it too (gitsync.Repo.Branches).
	ReleaseBranch string
	Git           Git
	Nix           Nix
	// CacheURL is the Nix store URL closures are copied to when Cache is nil.
	CacheURL string
	// Cache is where closures are copied to; nil: Nix copies to CacheURL.
	Cache Cache
	// SigningKeyFile is the cache's secret key (nix-store --generate-binary-cache-key).
	SigningKeyFile string
	// Signer signs releases (builder.releaseKeyFile).
	Signer *release.Signer
	// Parallelism bounds the hosts evaluated and built at once.
	Parallelism int
	// GCRootDir holds one GC root per host: the last system built for it.
	GCRootDir string
	// HostTimeout bounds one host's evaluation, build, signing and copy; zero: none.
	HostTimeout time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time

	mu       sync.Mutex
	progress Progress
	// results holds the hosts finished for progress.Commit, so a retry
	// after a transient failure only redoes the others.
	results map[string]release.Host
}

// Release makes sure commit, a main commit the caller verified, has a
// published release, and returns it. A release this builder published
// before is returned as it is. A commit or host that does not evaluate or
// build is recorded in the release (hosts refuse it); Release's own errors
// are never the commit's fault: the network, the cache, the Nix daemon,
// a full disk (wrapping syscall.ENOSPC), or the builder's configuration.
// Retry them later.
func (b *Builder) Release(ctx context.Context, commit string) (release.Found, error) {
	if found, err := b.finder().Find(ctx, commit); err == nil {
		return found, nil
	} else if !errors.Is(err, release.ErrNotYet) && !errors.Is(err, release.ErrUntrusted) && !release.IsCommitFault(err) {
		return release.Found{}, err
	}
	b.start(commit)
	rel, err := b.build(ctx, commit)
	if err != nil {
		b.finish("", err)
		return release.Found{}, err
	}
	found, err := b.publish(ctx, rel)
	b.finish(found.ID, err)
	return found, err
}

// build evaluates and builds every host of commit into a release.
func (b *Builder) build(ctx context.Context, commit string) (release.Release, error) {
	rel := release.Release{Commit: commit, Builder: b.Name, Hosts: map[string]release.Host{}}
	ref := rebuild.FlakeRef(b.RepoDir, b.Branch, commit)
	outputs, err := b.Nix.Outputs(ctx, ref)
	if err != nil {
		if !commitFault(ctx, err) {
			return release.Release{}, err
		}
		rel.Error = err.Error()
		rel.Time = b.now()
		return rel, nil
	}
	var prev release.Release
	if last, err := b.finder().Latest(ctx); err == nil {
		prev = last.Release
	}
	errs := b.hosts(ctx, ref, outputs, prev)
	if err := errors.Join(errs...); err != nil {
		return release.Release{}, err
	}
	b.mu.Lock()
	for name, h := range b.results {
		rel.Hosts[name] = h
	}
	b.mu.Unlock()
	rel.Time = b.now()
	return rel, nil
}

// hosts runs host for each output not finished yet, Parallelism at a time,
// and returns the errors that were not the commit's fault.
func (b *Builder) hosts(ctx context.Context, ref string, outputs []string, prev release.Release) []error {
	n := b.Parallelism
	if n <= 0 {
		n = DefaultParallelism
	}
	sem := make(chan struct{}, n)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, name := range outputs {
		if b.finished(name) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			h, err := b.host(ctx, ref, name, prev.Hosts[name])
			if err != nil {
				b.report(name, PhaseWaiting, h, err.Error())
				mu.Lock()
				errs = append(errs, fmt.Errorf("host %s: %w", name, err))
				mu.Unlock()
				return
			}
			b.record(name, h)
		}()
	}
	wg.Wait()
	return errs
}

// host evaluates, builds, signs and copies one host's system. Faults of
// the commit come back as a Host with Error set and a nil error.
func (b *Builder) host(ctx context.Context, ref, name string, prev release.Host) (release.Host, error) {
	if b.HostTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, b.HostTimeout)
		defer cancel()
	}
	b.report(name, PhaseEvaluating, release.Host{}, "")
	failpoint.Hit("builder-evaluate")
	ev, err := b.Nix.EvaluateHost(ctx, ref, name)
	if err != nil {
		return failed(ctx, err)
	}
	h := release.Host{System: ev.System, DrvPath: ev.DrvPath, OutPath: ev.OutPath}
	if prev == h {
		// Built, signed and copied for an earlier release; but a cache may
		// have lost paths since (a garbage collection, a wiped disk), and a
		// release must never name a closure the cache does not hold whole.
		missing, err := b.cache().MissingFrom(ctx, h.OutPath)
		if err != nil {
			return h, fault.New(fault.Transient, err)
		}
		if len(missing) == 0 {
			b.report(name, PhaseUnchanged, h, "")
			return h, nil
		}
	}
	b.report(name, PhaseBuilding, h, "")
	out, err := b.Nix.Build(ctx, ev.Evaluation, filepath.Join(b.GCRootDir, name))
	if err != nil {
		return failed(ctx, err)
	}
	b.report(name, PhaseCopying, h, "")
	failpoint.Hit("builder-sign")
	if err := b.Nix.Sign(ctx, b.SigningKeyFile, out); err != nil {
		return h, err
	}
	failpoint.Hit("builder-copy")
	if err := b.cache().Copy(ctx, out); err != nil {
		return h, err
	}
	return h, b.complete(ctx, out)
}

// complete checks that the cache holds out's whole closure after the copy:
// a release must never name a path a host cannot substitute. A cache that
// took the copy and still lacks paths is the cache's trouble, retried.
func (b *Builder) complete(ctx context.Context, out string) error {
	missing, err := b.cache().MissingFrom(ctx, out)
	if err != nil {
		return fault.New(fault.Transient, err)
	}
	if len(missing) > 0 {
		return fault.New(fault.Transient, fmt.Errorf("the cache lacks %d paths of %s after the copy, first %s",
			len(missing), filepath.Base(out), filepath.Base(missing[0])))
	}
	return nil
}

// failed turns an evaluation or build error into the host's entry when it
// is the commit's fault, or returns it classified: the builder's own
// trouble (out of memory: fault.Host; no remote builder for the system,
// the network, the Nix daemon: fault.Transient) is never signed into a
// release; the release waits and the next attempt retries.
func failed(ctx context.Context, err error) (release.Host, error) {
	switch {
	case commitFault(ctx, err):
		return release.Host{Error: err.Error()}, nil
	case fault.IsHostTrouble(err):
		return release.Host{}, fault.New(fault.Host, err)
	case ctx.Err() != nil:
		return release.Host{}, err
	}
	return release.Host{}, fault.New(fault.Transient, err)
}

// commitFault reports whether err says the commit does not evaluate or
// build, as opposed to trouble with the machine (rebuild.ErrOutOfMemory),
// the network, the remote builders (rebuild.ErrTransient) or ctx.
func commitFault(ctx context.Context, err error) bool {
	return ctx.Err() == nil && !rebuild.IsTransient(err) && !fault.IsHostTrouble(err) &&
		(errors.Is(err, rebuild.ErrEval) || errors.Is(err, rebuild.ErrBuild))
}

// publish commits rel to the release branch and pushes it. When another
// push landed first, it fetches and, unless that was a release of the same
// commit by this builder, tries again on top.
func (b *Builder) publish(ctx context.Context, rel release.Release) (release.Found, error) {
	var err error
	for range publishAttempts {
		failpoint.Hit("builder-publish")
		var old, id string
		if old, id, err = release.Commit(b.RepoDir, b.ReleaseBranch, rel, b.Signer); err != nil {
			return release.Found{}, err
		}
		if err = b.Git.Push(ctx, b.releaseBranch(), old, id); err == nil {
			return release.Found{Release: rel, ID: id, Signer: ssh.FingerprintSHA256(b.Signer.PublicKey())}, nil
		}
		if !errors.Is(err, gitsync.ErrPushRejected) {
			return release.Found{}, err
		}
		if _, err = b.Git.Fetch(ctx); err != nil {
			return release.Found{}, err
		}
		if found, err := b.finder().Find(ctx, rel.Commit); err == nil {
			return found, nil
		}
	}
	return release.Found{}, err
}

func (b *Builder) cache() Cache {
	if b.Cache != nil {
		return b.Cache
	}
	return storeCache{nix: b.Nix, url: b.CacheURL}
}

// storeCache is a cache Nix opens itself: file://, http(s)://, ssh-ng://,
// and s3:// where the host's Nix supports it.
type storeCache struct {
	nix Nix
	url string
}

func (c storeCache) Copy(ctx context.Context, path string) error { return c.nix.Copy(ctx, c.url, path) }

func (c storeCache) MissingFrom(ctx context.Context, path string) ([]string, error) {
	return c.nix.MissingFrom(ctx, c.url, path)
}

func (b *Builder) finder() release.Finder {
	return release.Finder{RepoDir: b.RepoDir, Branch: b.ReleaseBranch, Verifier: b.Signer}
}

func (b *Builder) releaseBranch() string {
	if b.ReleaseBranch == "" {
		return release.Branch
	}
	return b.ReleaseBranch
}

func (b *Builder) now() time.Time {
	if b.Now != nil {
		return b.Now()
	}
	return time.Now()
}
