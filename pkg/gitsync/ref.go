package gitsync

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/go-git/go-git/v5/plumbing"
)

// writeRef moves branch b of the copy in dir to h durably, after the
// objects it names were made durable (installPack syncs each pack, its
// index and the pack directory): the new value goes to <ref>.lock, which
// is synced and renamed over the ref, and the ref's directory is synced.
// A power cut leaves the old value or the new one, never an empty ref or
// a ref naming objects the disk does not have. Git and Nix skip .lock
// files, as git's own lock protocol leaves them.
func writeRef(dir, b string, h plumbing.Hash) error {
	path := filepath.Join(dir, filepath.FromSlash(plumbing.NewBranchReferenceName(b).String()))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	lock := path + ".lock"
	f, err := os.OpenFile(lock, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(h.String() + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(lock, path)
	}
	if err != nil {
		os.Remove(lock)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return syncRefDirs(dir, filepath.Dir(path))
}

// syncRefDirs syncs the directory of a ref and each parent up to refs/,
// since MkdirAll may just have created them (testing/eagle).
func syncRefDirs(repo, d string) error {
	top := filepath.Join(repo, "refs")
	for ; len(d) > len(top); d = filepath.Dir(d) {
		if err := syncDir(d); err != nil {
			return err
		}
	}
	return nil
}
