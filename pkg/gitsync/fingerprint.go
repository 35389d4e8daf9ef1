package gitsync

import (
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
)

// racyWindow is how long after a change a file may change again without
// its timestamps moving on: the kernel stamps files from a clock that ticks
// every few milliseconds, and some filesystems keep only seconds. A file
// stamped this close to the start of a check is not trusted to identify
// what the check read (git calls such entries racily clean).
var racyWindow = 2 * time.Second

// fileID identifies one version of a file or directory without reading it:
// rewriting a file, renaming another over it, or adding or removing an
// entry of a directory gives it a new fileID.
type fileID struct {
	exists       bool
	dev, ino     uint64
	mode         fs.FileMode
	size         int64
	mtime, ctime int64 // nanoseconds since the epoch
}

// statID returns the fileID of path; a path that does not exist has the
// zero fileID, so that its appearing is a change too.
func statID(path string) (fileID, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fileID{}, nil
	}
	if err != nil {
		return fileID{}, err
	}
	return identify(fi), nil
}

// fingerprint is what a Fetch found checked and up to date in Dir: the heads
// of the tracked branches and the identity of every file and directory
// that the check read or that a change to them would touch. While all of
// them keep their identity and the remote advertises the same heads, the
// copy is still the one that was checked, and a poll needs nothing else.
type fingerprint struct {
	dir      string
	branches []string
	heads    map[string]plumbing.Hash
	paths    []string
	ids      []fileID
}

// takeFingerprint records the files a check of dir read: config, HEAD, the
// refs of branches (loose and packed), the packs and their indexes, and
// the loose files of objects (the heads' commits and trees), with the
// directories that list them. It returns nil, so the next Fetch checks
// again, when one of them changed less than racyWindow before started,
// the moment the check began, or cannot be stat'ed.
func takeFingerprint(dir string, branches []string, heads map[string]plumbing.Hash, packs []string, objects []plumbing.Hash, started time.Time) *fingerprint {
	s := &fingerprint{dir: dir, branches: slices.Clone(branches), heads: maps.Clone(heads)}
	s.paths = fingerprintPaths(dir, branches, packs, objects)
	limit := started.Add(-racyWindow).UnixNano()
	for _, p := range s.paths {
		id, err := statID(p)
		if err != nil || id.exists && (id.mtime >= limit || id.ctime >= limit) {
			return nil
		}
		s.ids = append(s.ids, id)
	}
	return s
}

// fingerprintPaths lists what takeFingerprint identifies, parents before their
// entries.
func fingerprintPaths(dir string, branches []string, packs []string, objects []plumbing.Hash) []string {
	paths := []string{dir, filepath.Join(dir, "HEAD"), filepath.Join(dir, "config"), filepath.Join(dir, "packed-refs")}
	seen := map[string]bool{}
	add := func(p string) {
		if !seen[p] {
			seen[p] = true
			paths = append(paths, p)
		}
	}
	heads := filepath.Join(dir, "refs", "heads")
	add(heads)
	for _, b := range branches {
		// Every directory between refs/heads and the ref: testing/eagle
		// lives in refs/heads/testing.
		p := heads
		for _, part := range strings.Split(b, "/") {
			p = filepath.Join(p, part)
			add(p)
		}
	}
	add(filepath.Join(dir, "objects", "pack"))
	for _, p := range packs {
		add(p)
		add(strings.TrimSuffix(p, ".pack") + ".idx")
	}
	for _, h := range objects {
		hex := h.String()
		add(filepath.Join(dir, "objects", hex[:2]))
		add(filepath.Join(dir, "objects", hex[:2], hex[2:]))
	}
	return paths
}

// still reports whether r's copy is the one s describes and the remote
// heads are the ones it holds. It reads no file: it only stats them.
func (s *fingerprint) still(r *Repo, remote map[string]plumbing.Hash) bool {
	if s == nil || s.dir != r.Dir || !slices.Equal(s.branches, r.Branches) || !maps.Equal(s.heads, remote) {
		return false
	}
	for i, p := range s.paths {
		id, err := statID(p)
		if err != nil || id != s.ids[i] {
			return false
		}
	}
	return true
}
