// Command upstream refetches what upstream/sources.json lists through the
// Go module proxy (`go mod download -json`), copies it into the tree and
// rewrites upstream/lock.json. Run it from kubernetes/check after changing
// a pinned version in sources.json; with -verify it only compares.
//
// A source with a commit is read from a local git clone of its repository,
// named with -git <repository>=<git dir> (for example a mirror made with
// `git clone --mirror https://<repository>`): the tag must name the commit.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/avalanche-fleet/avalanche/kubernetes/check/upstream"
)

func main() {
	if err := run(context.Background(), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "upstream:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fl := flag.NewFlagSet("upstream", flag.ContinueOnError)
	verify := fl.Bool("verify", false, "fetch and compare with the vendored files; write nothing")
	gitDirs := map[string]string{}
	fl.Func("git", "`repository=dir`: the git directory holding a source with a commit (repeatable)", func(v string) error {
		repo, dir, ok := strings.Cut(v, "=")
		if !ok {
			return fmt.Errorf("want repository=dir, got %q", v)
		}
		gitDirs[repo] = dir
		return nil
	})
	if err := fl.Parse(args); err != nil {
		return err
	}
	const tree = ".." // kubernetes/
	var src upstream.Sources
	if err := upstream.ReadJSON("upstream/sources.json", &src); err != nil {
		return err
	}
	var lock upstream.Lock
	for _, s := range src.Sources {
		var m upstream.Locked
		var err error
		if s.Commit != "" {
			m, err = fetchGit(ctx, s, gitDirs[s.Module], tree, *verify)
		} else {
			m, err = fetch(ctx, s, tree, *verify)
		}
		if err != nil {
			return fmt.Errorf("%s@%s: %w", s.Module, s.Version, err)
		}
		lock.Modules = append(lock.Modules, m)
	}
	if *verify {
		return errors.Join(upstream.Verify(tree, src, lock)...)
	}
	b, err := json.MarshalIndent(lock, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile("upstream/lock.json", append(b, '\n'), 0o644)
}

// fetch downloads one module and copies (or, with dryRun, only hashes) the
// paths the source lists.
func fetch(ctx context.Context, s upstream.Source, tree string, dryRun bool) (upstream.Locked, error) {
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", s.Module+"@"+s.Version)
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var info struct{ Dir, Sum, Version, Error string }
	if jerr := json.Unmarshal(out, &info); jerr != nil || info.Error != "" || err != nil {
		return upstream.Locked{}, fmt.Errorf("%v: %v %s %s", cmd.Args, err, info.Error, stderr.String())
	}
	if info.Version != s.Version {
		return upstream.Locked{}, fmt.Errorf("module proxy resolved %s, not the exact version", info.Version)
	}
	m := upstream.Locked{Module: s.Module, Version: s.Version, Sum: info.Sum, Files: map[string]string{}}
	for _, c := range s.Copy {
		if !dryRun {
			if err := os.RemoveAll(filepath.Join(tree, c.To)); err != nil {
				return m, err
			}
		}
		if err := copyTree(filepath.Join(info.Dir, c.From), tree, c, m.Files, dryRun); err != nil {
			return m, err
		}
	}
	return m, nil
}

func copyTree(from, tree string, c upstream.Copy, sums map[string]string, dryRun bool) error {
	return filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(from, p)
		if err != nil {
			return err
		}
		if slices.ContainsFunc(c.Skip, func(s string) bool { return rel == s || strings.HasPrefix(rel, s+"/") }) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		to := filepath.ToSlash(filepath.Join(c.To, rel))
		sum, err := upstream.FileSum(p)
		if err != nil {
			return err
		}
		sums[to] = sum
		if dryRun {
			return nil
		}
		return copyFile(p, filepath.Join(tree, to))
	})
}

func copyFile(from, to string) error {
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
