package secrets

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Filesystem magic numbers from linux/magic.h.
const (
	tmpfsMagic = 0x01021994
	ramfsMagic = 0x858458f6
)

// mount is unix.Mount; tests replace it to play an older kernel.
var mount = unix.Mount

// IsRAMFS reports whether dir lives on tmpfs or ramfs (never on a disk).
// A tmpfs may still be swapped out; BackingOf tells.
func IsRAMFS(dir string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return isRAMMagic(int64(st.Type)), nil
}

func isRAMMagic(magic int64) bool {
	return magic == tmpfsMagic || magic == ramfsMagic
}

// EnsureRAMFS makes sure the files under dir are never written to a disk,
// swap included, and returns what now holds them. A ramfs or a noswap
// tmpfs is kept as it is. Otherwise (a disk, or a tmpfs whose pages may be
// swapped out, such as /run) it mounts on dir a tmpfs with mode 0751 and
// noswap, or, when the kernel rejects noswap (before Linux 6.4), a ramfs
// (never swapped, but without a size limit), and moves what dir held into
// the new mount. With allowSwappable, a swappable tmpfs is accepted as it
// is. Mounting needs CAP_SYS_ADMIN, and a mount made in a private mount
// namespace (systemd's PrivateTmp= and the like) is seen by no other
// service: under systemd, mount dir before the unit starts.
func EnsureRAMFS(dir string, allowSwappable bool) (Backing, error) {
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return "", fmt.Errorf("ensuring ramfs: %w", err)
	}
	b, err := BackingOf(dir)
	if err != nil || b.NeverSwapped() || (b == Tmpfs && allowSwappable) {
		return b, err
	}
	nb, err := mountRAM(dir)
	if err != nil && b == Tmpfs {
		return b, fmt.Errorf("%s is on a tmpfs whose pages can be swapped out to disk, and %w "+
			"(mount a ramfs or a noswap tmpfs there first, or accept swap with allowSwappable)", dir, err)
	}
	return nb, err
}

// mountRAM mounts a never-swapped filesystem on dir and moves into it what
// dir held, so no generation is lost and nothing stays behind, hidden
// under the mount on swappable memory or a disk.
func mountRAM(dir string) (Backing, error) {
	old, err := os.OpenRoot(dir) // keeps the directory the mount will hide
	if err != nil {
		return "", fmt.Errorf("opening %s: %w", dir, err)
	}
	defer old.Close()
	b, err := mountNeverSwapped(dir)
	if err != nil {
		return "", err
	}
	if err := moveInto(old, dir); err != nil {
		return b, fmt.Errorf("moving the files of %s onto its new %s: %w", dir, b, err)
	}
	return b, nil
}

// mountNeverSwapped tries a noswap tmpfs and checks that the kernel says
// so in mountinfo; a kernel that rejects the option gets a ramfs.
func mountNeverSwapped(dir string) (Backing, error) {
	const flags = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	err := mount("tmpfs", dir, "tmpfs", flags, "mode=0751,noswap")
	switch {
	case err == nil:
		if b, err := BackingOf(dir); err == nil && b == TmpfsNoSwap {
			return b, nil
		}
		unix.Unmount(dir, unix.MNT_DETACH) // mounted, but not noswap: do not use it
	case !errors.Is(err, unix.EINVAL):
		return "", fmt.Errorf("mounting a noswap tmpfs on %s: %w", dir, err)
	}
	if err := mount("ramfs", dir, "ramfs", flags, "mode=0751"); err != nil {
		return "", fmt.Errorf("mounting a ramfs on %s: %w", dir, err)
	}
	return RAMFS, nil
}

// moveInto copies every directory, file and symlink of old to dir with its
// owner and mode, then removes them from old.
func moveInto(old *os.Root, dir string) error {
	dst, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer dst.Close()
	err = fs.WalkDir(old.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return copyEntry(old, dst, p, info)
	})
	if err != nil {
		return err
	}
	entries, err := fs.ReadDir(old.FS(), ".")
	for _, e := range entries {
		err = errors.Join(err, old.RemoveAll(e.Name()))
	}
	return err
}

func copyEntry(old, dst *os.Root, p string, info fs.FileInfo) error {
	var err error
	switch {
	case info.IsDir():
		err = dst.Mkdir(p, 0o700)
	case info.Mode().IsRegular():
		var b []byte
		if b, err = old.ReadFile(p); err == nil {
			err = dst.WriteFile(p, b, 0o600)
		}
	case info.Mode()&fs.ModeSymlink != 0:
		var target string
		if target, err = old.Readlink(p); err == nil {
			err = dst.Symlink(target, p)
		}
	default:
		return fmt.Errorf("%s: unexpected %v", p, info.Mode().Type())
	}
	if err != nil {
		return err
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%s: no owner", p)
	}
	if err := dst.Lchown(p, int(st.Uid), int(st.Gid)); err != nil || info.Mode()&fs.ModeSymlink != 0 {
		return err
	}
	return dst.Chmod(p, info.Mode().Perm())
}
