//go:build !linux

package gitsync

import (
	"errors"
	"os"
)

// swapDir moves src to dst, leaving any previous dst at src for the
// caller to remove. Without an atomic exchange there is a moment with no
// dst at all, which Fetch treats as a missing copy and re-clones.
func swapDir(src, dst string) error {
	if _, err := os.Lstat(dst); errors.Is(err, os.ErrNotExist) {
		return os.Rename(src, dst)
	}
	return swapByRename(src, dst)
}
