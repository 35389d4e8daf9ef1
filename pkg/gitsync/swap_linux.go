package gitsync

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// swapDir moves src to dst. An existing dst is exchanged atomically with
// src (renameat2 RENAME_EXCHANGE), so the caller removes the old copy at
// src. Filesystems without exchange support fall back to two renames.
func swapDir(src, dst string) error {
	if _, err := os.Lstat(dst); errors.Is(err, os.ErrNotExist) {
		return os.Rename(src, dst)
	}
	err := unix.Renameat2(unix.AT_FDCWD, src, unix.AT_FDCWD, dst, unix.RENAME_EXCHANGE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		return swapByRename(src, dst)
	}
	if err != nil {
		return &os.LinkError{Op: "renameat2", Old: src, New: dst, Err: err}
	}
	return syncDir(dst + "/..")
}
