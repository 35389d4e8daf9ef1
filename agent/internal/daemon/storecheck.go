package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/config"
	"github.com/avalanche-fleet/avalanche/agent/internal/fault"
	"github.com/avalanche-fleet/avalanche/agent/internal/journal"
	"github.com/avalanche-fleet/avalanche/agent/internal/state"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild"
)

// A power cut can leave store paths that Nix calls valid and whose files
// are empty (Nix registers a path before its files reach the disk). After
// the machine went down without the agent stopping, and whenever the
// running system's files read empty, the agent verifies the closures it
// may run against Nix's recorded hashes and repairs what differs. That is
// the host's fault, never the commit's.

// storeCheckTimeout bounds a store check and its repairs: reading every
// byte of two system closures (a few GB) at the disk's speed.
const storeCheckTimeout = 30 * time.Minute

// storeRepairer is what the store check needs from Nix (rebuild.Nix).
type storeRepairer interface {
	Closure(ctx context.Context, out ...string) ([]string, error)
	Verify(ctx context.Context, paths []string) ([]string, error)
	RepairPath(ctx context.Context, path string, args ...string) error
	RepairBuild(ctx context.Context, flakeRef, output string) error
	ClearCache() error
	Delete(ctx context.Context, path string) error
	DeleteWithReferrers(ctx context.Context, path string) error
	RegisteredSince(ctx context.Context, since time.Time) ([]string, error)
}

// runningFilesEmpty reports whether the running system's files read empty
// or not at all: the secrets manifest (or, without one, the system's
// directory) is what start-up reads first.
func (d *Daemon) runningFilesEmpty() bool {
	cur := resolve(d.Config.Deploy.CurrentSystem)
	if cur == "" {
		return false
	}
	fi, err := os.Stat(filepath.Join(cur, "etc/avalanche-agent/secrets.json"))
	if errors.Is(err, fs.ErrNotExist) {
		_, err = os.ReadDir(cur)
		return err != nil
	}
	return err != nil || fi.Size() == 0
}

// checkStoreAtStart runs the store check when the previous boot ended
// uncleanly or the running system's files read empty.
func (d *Daemon) checkStoreAtStart(ctx context.Context) {
	switch {
	case d.unclean:
		// Nix's own git copies of fetched commits are written without
		// syncing either; they are a cache, so they go.
		if nix, ok := d.Nix.(storeRepairer); ok {
			if err := nix.ClearCache(); err != nil {
				d.Log.Warn().Err(err).Str("phase", "store").Msg("clearing Nix's cache after an unclean shutdown")
			}
		}
		d.checkStore(ctx, "an unclean shutdown")
	case d.runningFilesEmpty():
		d.checkStore(ctx, "the running system's files read empty")
	}
}

// storeSystems are the systems whose closures are checked: what runs,
// what booted, what was deployed, and both ends of an open deployment.
func (d *Daemon) storeSystems() []string {
	d.mu.Lock()
	paths := []string{resolve(d.Config.Deploy.CurrentSystem), resolve(d.Config.Deploy.BootedSystem)}
	if dep := d.st.Deployed; dep != nil {
		paths = append(paths, dep.StorePath)
	}
	if f := d.flight; f != nil {
		// The derivation's closure holds the sources evaluation copied
		// into the store (the secrets' sops files) and what a rebuild needs.
		paths = append(paths, f.StorePath, f.DrvPath, f.PreviousSystem)
	}
	d.mu.Unlock()
	var out []string
	for _, p := range paths {
		if p != "" && !slices.Contains(out, p) && strings.HasPrefix(p, "/nix/store/") && exists(p) {
			out = append(out, p)
		}
	}
	return out
}

// suspectPaths are the paths a store check verifies: the closures of
// systems and, after an unclean end, whatever Nix registered since the
// store was last synced (a flake source or derivations of an evaluation
// the cut stopped, which no closure lists yet and which the next
// evaluation would read as the commit being broken).
func (d *Daemon) suspectPaths(ctx context.Context, nix storeRepairer, systems []string) ([]string, error) {
	var paths []string
	if len(systems) > 0 {
		closure, err := nix.Closure(ctx, systems...)
		if err != nil {
			return nil, err
		}
		paths = closure
	}
	if d.unclean && !d.syncedBefore.IsZero() {
		recent, err := nix.RegisteredSince(ctx, d.syncedBefore.Add(-clockMargin))
		if err != nil {
			return nil, err
		}
		for _, p := range recent {
			if !slices.Contains(paths, p) {
				paths = append(paths, p)
			}
		}
	}
	return paths, nil
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// checkStore verifies the closures of storeSystems, repairs every damaged
// path, and when the running system was damaged activates it again and
// reinstalls its secrets. What it finds shows in status, in the journal
// (phase=store) and as the "store" phase's metric.
func (d *Daemon) checkStore(ctx context.Context, why string) {
	nix, ok := d.Nix.(storeRepairer)
	systems := d.storeSystems()
	if !ok || (len(systems) == 0 && d.syncedBefore.IsZero()) {
		return
	}
	d.setPhase(status.Recovering, "verifying the Nix store after "+why)
	ctx, cancel := context.WithTimeout(ctx, storeCheckTimeout)
	defer cancel()
	release := d.Notify.Hold(storeCheckTimeout)
	defer release()
	start := d.now()
	closure, err := d.suspectPaths(ctx, nix, systems)
	var damaged []string
	if err == nil {
		damaged, err = nix.Verify(ctx, closure)
	}
	log := d.Log.With().Str("phase", "store").Str("reason", why).Int("paths", len(closure)).Logger()
	if err != nil {
		log.Error().Err(err).Msg("verifying the Nix store")
		d.storeResult(fault.New(fault.Host, fmt.Errorf("verifying the Nix store after %s: %w", why, err)), "error", start)
		return
	}
	if len(damaged) == 0 {
		log.Info().Dur("durationMs", d.now().Sub(start)).Msg("the Nix store verifies")
		d.storeResult(nil, "ok", start)
		return
	}
	log.Warn().Strs("damaged", damaged).Msg("store damaged: paths Nix calls valid do not match their recorded hashes")
	left := d.repairStore(ctx, nix, damaged)
	if len(left) > 0 {
		err := fmt.Errorf("store damaged after %s: %d paths, %d could not be repaired: %s; run: nix-store --repair-path %s "+
			"(with a substituter that has them), or nix-store --verify --check-contents --repair",
			why, len(damaged), len(left), strings.Join(left, " "), strings.Join(left, " "))
		log.Error().Strs("unrepaired", left).Msg(err.Error())
		d.storeResult(fault.New(fault.Host, err), "error", start)
		return
	}
	msg := fmt.Sprintf("store damaged after %s: %d paths, repaired", why, len(damaged))
	log.Warn().Int("damaged", len(damaged)).Int("repaired", len(damaged)).Dur("durationMs", d.now().Sub(start)).Msg(msg)
	d.mu.Lock()
	d.storeLine = msg
	d.mu.Unlock()
	d.storeResult(nil, "repaired", start)
	d.reactivate(ctx, damaged)
}

// repairStore repairs damaged paths and returns those still damaged:
// each path is substituted again (builder mode: from the fleet cache) or
// rebuilt from its derivation; what neither restores (a source copied into
// the store at evaluation) is written again by evaluating the deployed
// commit with --repair.
func (d *Daemon) repairStore(ctx context.Context, nix storeRepairer, damaged []string) []string {
	var args []string
	if c := d.Config.Deploy.Cache; d.Config.Deploy.Source == config.SourceBuilder && c.URL != "" {
		args = []string{"--option", "substituters", c.URL, "--option", "trusted-public-keys", strings.Join(c.PublicKeys, " ")}
	}
	var left []string
	for _, p := range damaged {
		if err := nix.RepairPath(ctx, p, args...); err != nil {
			left = append(left, p)
		}
	}
	if len(left) == 0 {
		return nil
	}
	d.mu.Lock()
	var commits [][2]string // commit, branch; a builder-mode host never evaluates
	for _, dep := range []*state.Deployment{d.st.Deployed, d.st.Base} {
		if dep != nil && dep.Commit != "" && dep.Source != config.SourceBuilder {
			commits = append(commits, [2]string{dep.Commit, dep.Branch})
		}
	}
	if f := d.flight; f != nil && f.Commit != "" && f.Source != config.SourceBuilder {
		commits = append(commits, [2]string{f.Commit, f.Branch})
	}
	d.mu.Unlock()
	if len(commits) > 0 && d.Git != nil {
		// The same cut may have damaged the agent's git copy, which the
		// evaluation reads: a fetch checks it and clones it again if so.
		if _, err := d.Git.Fetch(ctx); err != nil {
			d.Log.Warn().Err(err).Str("phase", "store").Msg("fetching before repairing by evaluating again")
		}
	}
	for _, c := range commits {
		ref, err := d.repairRef(ctx, c[1], c[0])
		if err == nil {
			err = nix.RepairBuild(ctx, ref, d.Config.FlakeOutput)
		}
		if err != nil {
			d.Log.Warn().Err(err).Str("commit", c[0]).Str("phase", "store").Msg("repairing by evaluating again")
		}
	}
	left, err := nix.Verify(ctx, left)
	if err != nil {
		return damaged
	}
	// What nothing refers to (a derivation or source of a deployment that
	// was cut short) goes: Nix makes it again when it is next needed.
	var kept []string
	for _, p := range left {
		if nix.Delete(ctx, p) != nil && nix.DeleteWithReferrers(ctx, p) != nil {
			kept = append(kept, p)
		}
	}
	return kept
}

// reactivate runs the running system's activation again and reinstalls
// its secrets when a damaged path was part of it: what it wrote at boot
// came from empty files.
func (d *Daemon) reactivate(ctx context.Context, damaged []string) {
	cur := resolve(d.Config.Deploy.CurrentSystem)
	if cur == "" {
		return
	}
	nix := d.Nix.(storeRepairer)
	own, err := nix.Closure(ctx, cur)
	if err != nil || !slices.ContainsFunc(damaged, func(p string) bool { return slices.Contains(own, p) }) {
		return
	}
	// Not a deployment: the deployed commit's own system, switched to again.
	f := &journal.Flight{Action: "switch"}
	d.mu.Lock()
	if dep := d.st.Deployed; dep != nil {
		f.Commit = dep.Commit
	}
	d.mu.Unlock()
	a := d.activation(f, fmt.Sprintf("avalanche-repair-%d", d.now().Unix()))
	a.ProfileSet = true
	if err := d.Nix.Activate(context.WithoutCancel(ctx), cur, a); err != nil {
		d.Log.Error().Err(err).Str("phase", "store").Str("storePath", cur).Msg("activating the repaired system again")
	}
	if d.Secrets != nil {
		if _, err := d.Secrets.Install(ctx, cur); err != nil {
			d.Log.Error().Err(err).Str("phase", "store").Str("storePath", cur).Msg("installing the repaired system's secrets")
		}
	}
}

// storeResult reports a store check to the metrics and, when it failed,
// as the last error (the host's fault: no commit is judged).
func (d *Daemon) storeResult(err error, result string, start time.Time) {
	if d.Hooks.Phase != nil {
		d.Hooks.Phase("store", result, d.now().Sub(start))
	}
	if err == nil {
		return
	}
	d.mu.Lock()
	d.storeLine = err.Error()
	d.setLastError("", "store", err.Error(), fault.Host)
	d.mu.Unlock()
}

// repairRef is the flake reference of a commit evaluated again to repair
// the store: through the copy's evaluation directory, which fetches the
// commit's tree when a re-clone kept only the heads' trees.
func (d *Daemon) repairRef(ctx context.Context, branch, commit string) (string, error) {
	if d.Git == nil {
		return rebuild.FlakeRef(d.Config.RepoDir(), branch, commit), nil
	}
	return d.flakeRef(ctx, branch, commit)
}
