package rebuild

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// DBDir is where Nix records which store paths are valid and their hashes.
// A path registered there whose files never reached the disk is what a
// power cut leaves: valid to Nix, empty on disk.
const DBDir = "/nix/var/nix/db"

// Closure returns the store paths out depends on, out included, as
// `nix-store -qR` lists them.
func (n *Nix) Closure(ctx context.Context, out ...string) ([]string, error) {
	var stdout bytes.Buffer
	c := n.nixCommand("nix-store", append([]string{"-qR"}, out...)...)
	c.stdout = &stdout
	if err := c.run(ctx); err != nil {
		return nil, fmt.Errorf("listing the closure of %s: %w", strings.Join(out, " "), err)
	}
	return strings.Fields(stdout.String()), nil
}

// SyncResult says what Syncfs flushed.
type SyncResult struct {
	// Filesystems is how many distinct filesystems were synced.
	Filesystems int
}

// Syncfs makes every file of the filesystems holding paths durable: one
// syncfs(2) per distinct filesystem (by st_dev), not one fsync per file,
// and not sync(2) of the whole machine. A path that does not exist is
// skipped (a boot directory the host does not have); a symbolic link
// counts for the filesystem it lies on, not the one it points to.
func Syncfs(paths ...string) (SyncResult, error) {
	seen := map[uint64]bool{}
	var errs []error
	for _, p := range paths {
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("stat %s: %w", p, err))
			}
			continue
		}
		if seen[st.Dev] {
			continue
		}
		seen[st.Dev] = true
		if err := syncfsOf(p, st.Mode&unix.S_IFMT == unix.S_IFLNK); err != nil {
			errs = append(errs, err)
		}
	}
	return SyncResult{Filesystems: len(seen)}, errors.Join(errs...)
}

// syncfsOf runs syncfs(2) on the filesystem holding p. A link cannot be
// opened itself without following it, so its directory stands for it.
func syncfsOf(p string, link bool) error {
	if link {
		p = filepath.Dir(p)
	}
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("opening %s to sync its filesystem: %w", p, err)
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return fmt.Errorf("syncfs of the filesystem holding %s: %w", p, os.NewSyscallError("syncfs", err))
	}
	return nil
}

// ActivationPaths are the paths a switch writes besides the store: the
// profile's directory (its generation links) and the boot entries.
func ActivationPaths(profile string) []string {
	if profile == "" {
		profile = DefaultProfile
	}
	return slices.Compact([]string{filepath.Dir(profile), "/boot", "/boot/efi", DBDir})
}
