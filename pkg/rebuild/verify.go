package rebuild

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// modifiedRe matches Nix's report of a store path whose contents no longer
// hash to what it recorded (Nix 2.8 and later say it the same way; older
// ones quoted with ‘’). A failure it does not match is asked path by path.
var modifiedRe = regexp.MustCompile("path ['‘`](/[^'’]+)['’] was modified!")

// Verify checks each path's contents against the hash Nix recorded when it
// registered the path (`nix-store --verify-path`), reading every byte of
// them, and returns the paths that differ: what a power cut leaves when
// Nix had registered a path whose files never reached the disk. It runs
// at the lowest best-effort I/O priority when ionice is installed, so a
// host keeps serving while it reads (not the idle class: a busy disk
// would starve it without bound).
func (n *Nix) Verify(ctx context.Context, paths []string) ([]string, error) {
	var damaged []string
	for batch := range slices.Chunk(paths, argBatch) {
		var stderr bytes.Buffer
		c := idleIO(n.nixCommand("nix-store", append([]string{"--verify-path"}, batch...)...))
		c.stderr = &stderr
		err := c.run(ctx)
		found := modifiedRe.FindAllSubmatch(stderr.Bytes(), -1)
		for _, m := range found {
			damaged = append(damaged, string(m[1]))
		}
		var exit *exec.ExitError
		switch {
		case err == nil:
		case ctx.Err() != nil || !errors.As(err, &exit):
			return damaged, fmt.Errorf("verifying store paths: %w", err)
		case len(found) == 0:
			// Failed without naming a path: a path whose files are gone
			// entirely. Ask one path at a time which.
			for _, p := range batch {
				if n.verifyOne(ctx, p) != nil {
					damaged = append(damaged, p)
				}
			}
		}
	}
	return damaged, nil
}

func (n *Nix) verifyOne(ctx context.Context, path string) error {
	return idleIO(n.nixCommand("nix-store", "--verify-path", path)).run(ctx)
}

// idleIO runs c at the lowest best-effort I/O priority when ionice exists.
func idleIO(c command) command {
	if p, err := exec.LookPath("ionice"); err == nil {
		c.argv = append([]string{p, "-c", "2", "-n", "7"}, c.argv...)
	}
	return c
}

// RepairPath rewrites a damaged store path (`nix-store --repair-path`):
// substituted again from the substituters that args name (a builder-mode
// host's fleet cache), or rebuilt from its derivation when it has one.
func (n *Nix) RepairPath(ctx context.Context, path string, args ...string) error {
	c := n.nixCommand("nix-store", append(append([]string{"--repair-path"}, args...), path)...)
	if err := c.run(ctx); err != nil {
		return fmt.Errorf("repairing %s: %w", path, err)
	}
	return nil
}

// RepairBuild evaluates and builds a system again with --repair, which
// rewrites every damaged path of its closure, sources copied into the store
// at evaluation included (those have no derivation to rebuild them from).
// Nix 2.8's `nix build` has no --repair; nix-instantiate and nix-store
// have it in every version.
func (n *Nix) RepairBuild(ctx context.Context, flakeRef, output string) error {
	expr := "(builtins.getFlake " + nixQuote(flakeRef) + ")." + ToplevelAttr(output)
	var stdout bytes.Buffer
	c := n.nixCommand("nix-instantiate", "--repair", "--expr", expr)
	c.stdout = &stdout
	if err := c.run(ctx); err != nil {
		return fmt.Errorf("evaluating %s#%s with --repair: %w", flakeRef, output, err)
	}
	drv := strings.TrimSpace(stdout.String())
	if err := n.nixCommand("nix-store", "--realise", "--repair", drv).run(ctx); err != nil {
		return fmt.Errorf("rebuilding %s with --repair: %w", drv, err)
	}
	return nil
}

// RegisteredSince returns the local store's paths registered as valid at
// or after since (by the clock of the machine when it registered them):
// after a power cut, what Nix registered since the store was last synced
// may have empty files, though no system's closure lists it yet (a flake
// source or a derivation an evaluation that was cut short wrote). One
// `nix path-info --all`: seconds for tens of thousands of paths.
func (n *Nix) RegisteredSince(ctx context.Context, since time.Time) ([]string, error) {
	var stdout bytes.Buffer
	c := n.nixCommand("nix", "path-info", "--json", "--all")
	c.stdout = &stdout
	if err := c.run(ctx); err != nil {
		return nil, fmt.Errorf("listing the store's paths: %w", err)
	}
	infos := map[string]PathInfo{}
	if err := decodePathInfos(stdout.Bytes(), infos); err != nil {
		return nil, fmt.Errorf("decoding nix path-info --all: %w", err)
	}
	var recent []string
	for p, info := range infos {
		if info.RegistrationTime >= since.Unix() {
			recent = append(recent, p)
		}
	}
	slices.Sort(recent)
	return recent, nil
}

// DeleteWithReferrers removes path and every path that refers to it,
// directly or not, when none of them is alive (`nix-store --delete` refuses
// a path a GC root or a running process holds, and then nothing of it is
// lost): a damaged derivation that an evaluation cut short wrote goes with
// the derivations built on it, and Nix writes them all again when next needed.
func (n *Nix) DeleteWithReferrers(ctx context.Context, path string) error {
	var stdout bytes.Buffer
	c := n.nixCommand("nix-store", "--query", "--referrers-closure", path)
	c.stdout = &stdout
	if err := c.run(ctx); err != nil {
		return fmt.Errorf("listing what refers to %s: %w", path, err)
	}
	all := strings.Fields(stdout.String())
	if err := n.nixCommand("nix-store", append([]string{"--delete"}, all...)...).run(ctx); err != nil {
		return fmt.Errorf("deleting %s and the %d paths that refer to it: %w", path, len(all)-1, err)
	}
	return nil
}

// nixQuote writes s as a Nix string literal.
func nixQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "${", `\${`).Replace(s) + `"`
}

// CacheDir is Nix's cache directory for the commands n runs:
// $XDG_CACHE_HOME/nix, else $HOME/.cache/nix (n.Env first).
func (n *Nix) CacheDir() string {
	env := map[string]string{"XDG_CACHE_HOME": os.Getenv("XDG_CACHE_HOME"), "HOME": os.Getenv("HOME")}
	for _, kv := range n.Env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	if env["HOME"] == "" { // a service without $HOME: Nix asks the password database
		if u, err := user.Current(); err == nil {
			env["HOME"] = u.HomeDir
		}
	}
	switch {
	case env["XDG_CACHE_HOME"] != "":
		return filepath.Join(env["XDG_CACHE_HOME"], "nix")
	case env["HOME"] != "":
		return filepath.Join(env["HOME"], ".cache", "nix")
	}
	return ""
}

// ClearCache removes Nix's cache directory: the git copies its fetchers
// keep and its evaluation caches. Nix writes them without syncing, so a
// power cut can leave an empty object that Nix reads as the commit being
// broken; everything in it is fetched or computed again.
func (n *Nix) ClearCache() error {
	dir := n.CacheDir()
	if dir == "" {
		return nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("clearing Nix's cache: %w", err)
	}
	return nil
}

// Delete removes a store path that nothing refers to and no GC root holds
// (`nix-store --delete`): Nix makes it again when it is next needed.
func (n *Nix) Delete(ctx context.Context, path string) error {
	if err := n.nixCommand("nix-store", "--delete", path).run(ctx); err != nil {
		return fmt.Errorf("deleting %s: %w", path, err)
	}
	return nil
}
