package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/avalanche-fleet/avalanche/kubernetes/check/upstream"
)

// fetchGit copies (or, with dryRun, only hashes) the paths a git source
// lists, read at its commit from the git directory dir.
func fetchGit(ctx context.Context, s upstream.Source, dir, tree string, dryRun bool) (upstream.Locked, error) {
	m := upstream.Locked{Module: s.Module, Version: s.Version, Sum: upstream.GitSum(s.Commit), Files: map[string]string{}}
	if dir == "" {
		return m, fmt.Errorf("a git source: name its clone with -git %s=<git dir>", s.Module)
	}
	tagged, err := git(ctx, dir, "rev-parse", "--verify", s.Version+"^{commit}")
	if err != nil {
		return m, err
	}
	if got := strings.TrimSpace(string(tagged)); got != s.Commit {
		return m, fmt.Errorf("tag %s is commit %s, sources.json says %s", s.Version, got, s.Commit)
	}
	for _, c := range s.Copy {
		if !dryRun {
			if err := os.RemoveAll(filepath.Join(tree, c.To)); err != nil {
				return m, err
			}
		}
		if err := copyGit(ctx, dir, s.Commit, tree, c, m.Files, dryRun); err != nil {
			return m, err
		}
	}
	return m, nil
}

// copyGit copies every blob under c.From at commit, except c.Skip.
func copyGit(ctx context.Context, dir, commit, tree string, c upstream.Copy, sums map[string]string, dryRun bool) error {
	out, err := git(ctx, dir, "ls-tree", "-r", "-z", commit, "--", c.From)
	if err != nil {
		return err
	}
	for _, entry := range strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00") {
		meta, path, ok := strings.Cut(entry, "\t")
		f := strings.Fields(meta)
		if !ok || len(f) != 3 || f[1] != "blob" {
			return fmt.Errorf("ls-tree %s %s: unexpected entry %q (submodule or link?)", commit, c.From, entry)
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(path, c.From), "/")
		if slices.ContainsFunc(c.Skip, func(s string) bool { return rel == s || strings.HasPrefix(rel, s+"/") }) {
			continue
		}
		blob, err := git(ctx, dir, "cat-file", "blob", f[2])
		if err != nil {
			return err
		}
		to := filepath.ToSlash(filepath.Join(c.To, rel)) // rel is "" when From is a file
		sum := sha256.Sum256(blob)
		sums[to] = hex.EncodeToString(sum[:])
		if dryRun {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(tree, to)), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(tree, to), blob, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func git(ctx context.Context, dir string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"--git-dir", dir}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%v: %w: %s", cmd.Args, err, stderr.String())
	}
	return out, nil
}
