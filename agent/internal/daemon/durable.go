package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/config"
	"github.com/avalanche-fleet/avalanche/agent/internal/fault"
	"github.com/avalanche-fleet/avalanche/agent/internal/journal"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild"
)

// Durable before recorded: Nix registers a path as valid before its files
// reach the disk, so a power cut right after a build can leave a system
// that Nix calls valid and whose files are empty. Nothing that names a new
// system (the switch's intent, the profile, the journal's done, state.json,
// a forge status) may be written before its closure is on stable storage.

// closureLister is the part of rebuild.Nix that lists a closure; a Nix
// without it (a test's stand-in) has the target's own filesystem synced.
type closureLister interface {
	Closure(ctx context.Context, out ...string) ([]string, error)
}

// thenDurable runs a step, then makes what it wrote durable before the
// step's done is journaled.
func thenDurable(run, sync func(ctx context.Context, f *journal.Flight) error) func(ctx context.Context, f *journal.Flight) error {
	return func(ctx context.Context, f *journal.Flight) error {
		if err := run(ctx, f); err != nil {
			return err
		}
		return sync(ctx, f)
	}
}

// syncClosure flushes the filesystems that hold f's closure and Nix's
// database, after the build or substitution and before anything names it.
func (d *Daemon) syncClosure(ctx context.Context, f *journal.Flight) error {
	start := d.now()
	paths := []string{f.StorePath, rebuild.DBDir}
	if nix, ok := d.Nix.(closureLister); ok {
		closure, err := nix.Closure(ctx, f.StorePath)
		if err != nil {
			if ctx.Err() != nil {
				return fault.New(fault.Shutdown, err)
			}
			return fault.New(fault.Host, err)
		}
		paths = append(paths, closure...)
	}
	return d.syncfs(f, journal.StepBuild, start, paths)
}

// syncEvaluation flushes what evaluation wrote to the store: the flake's
// source tree and the sources it copied, which no closure lists and no
// --repair rewrites (a damaged one fails the next evaluation, as if the
// commit were broken), and the derivations.
func (d *Daemon) syncEvaluation(_ context.Context, f *journal.Flight) error {
	if f.Source == config.SourceBuilder {
		return nil // nothing was evaluated here
	}
	return d.syncfs(f, journal.StepEvaluate, d.now(), []string{f.DrvPath, rebuild.DBDir})
}

// syncActivation flushes what activation wrote besides the store: the
// profile's generation links and the boot entries.
func (d *Daemon) syncActivation(_ context.Context, f *journal.Flight) error {
	return d.syncfs(f, journal.StepSwitch, d.now(), rebuild.ActivationPaths(d.Config.Deploy.Profile))
}

func (d *Daemon) syncfs(f *journal.Flight, phase string, start time.Time, paths []string) error {
	before := time.Now() // Nix's clock, not the daemon's: compared with its registration times
	res, err := rebuild.Syncfs(paths...)
	if err != nil {
		return fault.New(fault.Host, fmt.Errorf("making the deployment durable: %w", err))
	}
	d.markSynced(before)
	d.Log.Debug().Str("commit", f.Commit).Str("phase", phase).Int("filesystems", res.Filesystems).
		Int("paths", len(paths)).Dur("durationMs", d.now().Sub(start)).Msg("synced to stable storage")
	return nil
}
