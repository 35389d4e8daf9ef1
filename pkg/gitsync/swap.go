package gitsync

import "os"

// swapByRename replaces dst with src in two renames and leaves the old dst
// at src. A crash in between leaves no dst, which Fetch re-clones.
func swapByRename(src, dst string) error {
	old := src + ".old"
	if err := os.Rename(dst, old); err != nil {
		return err
	}
	if err := os.Rename(src, dst); err != nil {
		return err
	}
	return os.Rename(old, src)
}

// syncDir flushes a directory's entries (renames into it) to stable storage.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
