package daemon

import (
	"context"

	"github.com/avalanche-fleet/avalanche/agent/internal/builder"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
	"github.com/avalanche-fleet/avalanche/pkg/release"
)

// Releaser is the builder role (builder.Builder): it evaluates and builds
// every host's system for a commit, fills the fleet cache and publishes
// the signed release.
type Releaser interface {
	Release(ctx context.Context, commit string) (release.Found, error)
	Progress() builder.Progress
}

// SetBuilderMode sets the host side of builder mode and the builder role
// (nil for none): before Run, or from OnReload after the config changed.
func (d *Daemon) SetBuilderMode(src Source, b Releaser) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.Source, d.Builder = src, b
	d.released, d.releasedAt = "", ""
}

// releaseFleet has the builder role release main's tip, which this pass
// fetched and verified, before the host deploys anything itself. It runs
// in the pass, under the pass lock, so it never writes into the repository
// while a fetch does. Its failures are never the commit's fault: they are
// logged and shown in the builder's progress, and the next pass resumes
// the work. One attempt is bounded by builder.hostTimeout. A release branch
// that moved since (force-pushed back past the release, or anything pushed
// on top) is looked at again: a release lost that way is published anew.
func (d *Daemon) releaseFleet(ctx context.Context, commit, releaseHead string) {
	d.mu.Lock()
	done := d.released == commit && d.releasedAt == releaseHead
	d.mu.Unlock()
	if d.Builder == nil || commit == "" || done {
		return
	}
	d.setPhase(status.Releasing, "building every host's system of "+short(commit)+" for the fleet")
	timeout := d.Config.Builder.HostTimeout.D()
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hold := d.Notify.Hold(timeout)
	start := d.now()
	found, err := d.Builder.Release(rctx, commit)
	hold()
	log := d.Log.With().Str("commit", commit).Str("phase", "release").Dur("durationMs", d.now().Sub(start)).Logger()
	switch {
	case err == nil:
		d.mu.Lock()
		d.released, d.releasedAt = commit, releaseHead
		if found.ID != "" && found.ID != releaseHead {
			d.releasedAt = found.ID // pushed by this pass: the next fetch brings it
		}
		d.mu.Unlock()
		log.Info().Str("release", found.ID).Int("hosts", len(found.Hosts)).Msg("released the commit for the fleet")
	case ctx.Err() != nil:
		log.Info().Msg("stopping while releasing; the next start resumes")
	default:
		log.Error().Err(err).Msg("releasing the commit for the fleet; retried at the next pass")
	}
}
