package secrets

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Filesystem magic numbers from linux/magic.h.
const (
	tmpfsMagic = 0x01021994
	ramfsMagic = 0x858458f6
)

// IsRAMFS reports whether dir lives on tmpfs or ramfs (never on a disk).
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

// EnsureRAMFS makes sure dir is on a RAM-backed filesystem, so decrypted
// secrets never reach a disk. When it is not, it mounts a tmpfs there with
// mode 0751 and the noswap option (Linux 6.4 and later), or, when the kernel
// rejects noswap, a ramfs, which is never swapped either (but has no size
// limit). Requires CAP_SYS_ADMIN.
func EnsureRAMFS(dir string) error {
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return fmt.Errorf("ensuring ramfs: %w", err)
	}
	ok, err := IsRAMFS(dir)
	if err != nil || ok {
		return err
	}
	const flags = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	err = unix.Mount("tmpfs", dir, "tmpfs", flags, "mode=0751,noswap")
	if errors.Is(err, unix.EINVAL) {
		err = unix.Mount("ramfs", dir, "ramfs", flags, "mode=0751")
	}
	if err != nil {
		return fmt.Errorf("mounting a ramfs on %s: %w", dir, err)
	}
	return nil
}
