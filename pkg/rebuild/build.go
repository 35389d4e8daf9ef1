package rebuild

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Build realises the evaluated system. When gcRoot is set, Nix makes it a
// symlink to the output and registers it as an indirect GC root (as
// `nix build --out-link` would), so a garbage collection between build and
// switch cannot remove the system. Build returns the output path.
func (n *Nix) Build(ctx context.Context, ev Evaluation, gcRoot string) (string, error) {
	out, err := n.build(ctx, ev, gcRoot)
	if err != nil {
		return "", fmt.Errorf("building %s: %w", strings.TrimSuffix(filepath.Base(ev.DrvPath), ".drv"), err)
	}
	return out, nil
}

func (n *Nix) build(ctx context.Context, ev Evaluation, gcRoot string) (string, error) {
	args, gcRoot, err := withRoot([]string{"--realise", ev.DrvPath}, gcRoot)
	if err != nil {
		return "", err
	}
	var stdout strings.Builder
	c := n.nixCommand("nix-store", args...)
	c.stdout = &stdout
	if err := c.run(ctx); err != nil {
		return "", classify(ErrBuild, err)
	}
	out := lastLine(stdout.String())
	if gcRoot != "" {
		target, err := os.Readlink(gcRoot)
		if err != nil {
			return "", fmt.Errorf("reading gc root: %w", err)
		}
		out = target
	}
	if ev.OutPath != "" && out != ev.OutPath {
		return "", fmt.Errorf("%w: built %q, evaluation said %q", ErrBuild, out, ev.OutPath)
	}
	return out, nil
}

// withRoot appends --add-root with gcRoot made absolute, when it is set,
// and returns the arguments and the absolute root.
func withRoot(args []string, gcRoot string) ([]string, string, error) {
	if gcRoot == "" {
		return args, "", nil
	}
	abs, err := filepath.Abs(gcRoot)
	if err != nil {
		return nil, "", err
	}
	return append(args, "--add-root", abs), abs, nil
}

// lastLine returns the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// PruneGCRoots keeps the newest GC root symlink in dir (by the symlink's own
// modification time) plus the keep previous ones, and removes the others.
// Nix drops the matching entries in gcroots/auto at its next collection.
// Files that are not symlinks are left alone; a missing dir is not an error.
func PruneGCRoots(dir string, keep int) error {
	roots, err := gcRoots(dir)
	if err != nil {
		return fmt.Errorf("pruning gc roots in %s: %w", dir, err)
	}
	keep = max(keep, 0) + 1
	var errs []error
	for i := keep; i < len(roots); i++ {
		if err := os.Remove(roots[i]); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pruning gc roots in %s: %w", dir, err)
	}
	return nil
}

// gcRoots lists the symlinks in dir, newest first.
func gcRoots(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	type root struct {
		path  string
		mtime int64
	}
	var roots []root
	for _, e := range entries {
		if e.Type()&os.ModeSymlink == 0 {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		roots = append(roots, root{filepath.Join(dir, e.Name()), info.ModTime().UnixNano()})
	}
	sort.Slice(roots, func(i, j int) bool {
		if roots[i].mtime != roots[j].mtime {
			return roots[i].mtime > roots[j].mtime
		}
		return roots[i].path > roots[j].path
	})
	paths := make([]string, len(roots))
	for i, r := range roots {
		paths[i] = r.path
	}
	return paths, nil
}
