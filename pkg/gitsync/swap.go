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
