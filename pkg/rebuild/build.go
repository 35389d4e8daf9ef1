package rebuild

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
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

// GCRootName names a GC root by a sequence number that only grows (the
// agent's deployment counter) rather than by a time: a clock that jumps
// can then neither make a fresh root look old nor an old one new.
func GCRootName(seq uint64, label string) string {
	return gcRootPrefix + strconv.FormatUint(seq, 10) + "-" + label
}

const gcRootPrefix = "flight-"

// PruneGCRoots removes the GC root symlinks in dir except the keep newest
// by sequence number (see GCRootName) and every root pointing at one of
// pinned (the systems running, deployed or being deployed). Symlinks not
// named by GCRootName (older agents named them by time) are removed unless
// pinned. Nix drops the matching entries in gcroots/auto at its next
// collection. Files that are not symlinks are left alone; a missing dir is
// not an error.
func PruneGCRoots(dir string, keep int, pinned ...string) error {
	roots, err := gcRoots(dir)
	if err != nil {
		return fmt.Errorf("pruning gc roots in %s: %w", dir, err)
	}
	var errs []error
	kept := 0
	for _, r := range roots {
		target, _ := os.Readlink(r.path)
		switch {
		case target != "" && slices.Contains(pinned, target):
			continue
		case r.seq > 0 && kept < keep:
			kept++
			continue
		}
		if err := os.Remove(r.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pruning gc roots in %s: %w", dir, err)
	}
	return nil
}

type gcRoot struct {
	path string
	seq  uint64 // 0: not named by GCRootName
}

// gcRoots lists the symlinks in dir, highest sequence number first.
func gcRoots(dir string) ([]gcRoot, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var roots []gcRoot
	for _, e := range entries {
		if e.Type()&os.ModeSymlink == 0 {
			continue
		}
		r := gcRoot{path: filepath.Join(dir, e.Name())}
		if rest, ok := strings.CutPrefix(e.Name(), gcRootPrefix); ok {
			num, _, _ := strings.Cut(rest, "-")
			r.seq, _ = strconv.ParseUint(num, 10, 64)
		}
		roots = append(roots, r)
	}
	sort.Slice(roots, func(i, j int) bool { return roots[i].seq > roots[j].seq })
	return roots, nil
}
