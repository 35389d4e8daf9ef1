package gitsync

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-git/go-billy/v5/osfs"
	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// objectCacheSize bounds go-git's object cache: the agent runs on 1 GB
// boards and only walks a few commits per pass.
const objectCacheSize = 8 * cache.MiByte

// local is an open bare repository.
type local struct {
	dir    string
	repo   *git.Repository
	st     *filesystem.Storage
	closed bool
}

// Close releases open pack files; it may be called more than once.
func (l *local) Close() error {
	if l.closed {
		return nil
	}
	l.closed = true
	return l.st.Close()
}

// openLocal opens the bare repository in dir without writing to it.
func openLocal(dir string) (*local, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", dir)
	}
	st := filesystem.NewStorage(bufferedIdx{osfs.New(dir)}, cache.NewObjectLRU(objectCacheSize))
	repo, err := git.Open(st, nil)
	if err != nil {
		st.Close()
		return nil, err
	}
	return &local{dir: dir, repo: repo, st: st}, nil
}

// checked is what check read besides config, HEAD and refs: the pack
// files, and the commit and tree of each tracked branch.
type checked struct {
	packs   []string
	objects []plumbing.Hash
}

// check verifies that the repository is usable: config and HEAD readable,
// packs complete, and each tracked branch that exists locally points to a
// readable commit and, unless the branch is treeless, tree. Reads only.
func (l *local) check(dir string, branches []string, treeless map[string]bool) (checked, error) {
	var got checked
	if _, err := l.repo.Config(); err != nil {
		return got, fmt.Errorf("reading config: %w", err)
	}
	if err := l.checkHEAD(); err != nil {
		return got, err
	}
	packs, err := checkPacks(filepath.Join(dir, "objects", "pack"))
	if err != nil {
		return got, err
	}
	got.packs = packs
	for _, b := range branches {
		h, ok, err := l.head(b)
		if err != nil {
			return got, err
		}
		if !ok {
			continue
		}
		c, err := l.repo.CommitObject(h)
		if err != nil {
			return got, fmt.Errorf("reading commit %s of branch %q: %w", h, b, err)
		}
		got.objects = append(got.objects, h)
		if treeless[b] {
			continue
		}
		if _, err := c.Tree(); err != nil {
			return got, fmt.Errorf("reading tree of commit %s: %w", h, err)
		}
		got.objects = append(got.objects, c.TreeHash)
	}
	return got, nil
}

// checkHEAD rejects a HEAD that is neither a symbolic ref nor a hash; go-git
// reads garbage as the zero hash.
func (l *local) checkHEAD() error {
	ref, err := l.st.Reference(plumbing.HEAD)
	if err != nil {
		return fmt.Errorf("reading HEAD: %w", err)
	}
	if ref.Type() == plumbing.SymbolicReference && ref.Target().IsBranch() ||
		ref.Type() == plumbing.HashReference && !ref.Hash().IsZero() {
		return nil
	}
	return fmt.Errorf("invalid HEAD %q", ref.String())
}

// head returns the local hash of branch b; ok is false when the ref is absent.
func (l *local) head(b string) (h plumbing.Hash, ok bool, err error) {
	ref, err := l.st.Reference(plumbing.NewBranchReferenceName(b))
	if errors.Is(err, plumbing.ErrReferenceNotFound) {
		return plumbing.ZeroHash, false, nil
	}
	if err != nil {
		return plumbing.ZeroHash, false, fmt.Errorf("reading branch %q: %w", b, err)
	}
	return ref.Hash(), true, nil
}

// checkPacks compares each pack's trailing checksum with the one recorded
// in its index, which catches truncated or half-written packs cheaply. It
// returns the pack files. An index without its pack is skipped: go-git
// lists packs by their .pack files and never reads it.
func checkPacks(dir string) ([]string, error) {
	idxs, err := filepath.Glob(filepath.Join(dir, "pack-*.idx"))
	if err != nil {
		return nil, err
	}
	var packs []string
	for _, idx := range idxs {
		pack := strings.TrimSuffix(idx, ".idx") + ".pack"
		if _, err := os.Stat(pack); errors.Is(err, os.ErrNotExist) {
			continue // a fetch cut short before its pack appeared; unread
		}
		want, err := tail(idx, 40)
		if err != nil {
			return nil, fmt.Errorf("reading pack index: %w", err)
		}
		got, err := tail(pack, 20)
		if err != nil {
			return nil, fmt.Errorf("reading pack: %w", err)
		}
		if !bytes.Equal(want[:20], got) {
			return nil, fmt.Errorf("pack %s does not match its index", filepath.Base(pack))
		}
		packs = append(packs, pack)
	}
	return packs, nil
}

// tail returns the last n bytes of the file at path.
func tail(path string, n int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() < n {
		return nil, fmt.Errorf("%s: %w", path, io.ErrUnexpectedEOF)
	}
	b := make([]byte, n)
	_, err = f.ReadAt(b, fi.Size()-n)
	return b, err
}

// upToDate reports whether the local branches equal the remote ones
// exactly: same hash for branches on the remote, absent otherwise.
// The objects were already checked by check.
func (l *local) upToDate(branches []string, remote map[string]plumbing.Hash) (bool, error) {
	for _, b := range branches {
		h, ok, err := l.head(b)
		if err != nil {
			return false, err
		}
		want, onRemote := remote[b]
		if ok != onRemote || h != want {
			return false, nil
		}
	}
	return true, nil
}

// heads returns the local hash of each tracked branch that exists.
func (l *local) heads(branches []string) (map[string]string, error) {
	out := make(map[string]string, len(branches))
	for _, b := range branches {
		h, ok, err := l.head(b)
		if err != nil {
			return nil, err
		}
		if ok {
			out[b] = h.String()
		}
	}
	return out, nil
}

// prune deletes local branches that no longer exist on the remote.
func (l *local) prune(branches []string, remote map[string]plumbing.Hash) (bool, error) {
	changed := false
	for _, b := range branches {
		if _, onRemote := remote[b]; onRemote {
			continue
		}
		_, ok, err := l.head(b)
		if err != nil || !ok {
			if err != nil {
				return changed, err
			}
			continue
		}
		if err := l.st.RemoveReference(plumbing.NewBranchReferenceName(b)); err != nil {
			return changed, fmt.Errorf("removing branch %q: %w", b, err)
		}
		changed = true
	}
	return changed, nil
}
