package secrets

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Backing is what holds a directory's files, as far as swap is concerned.
type Backing string

// The backings BackingOf tells apart.
const (
	RAMFS       Backing = "ramfs"        // RAM only, never swapped
	TmpfsNoSwap Backing = "tmpfs,noswap" // RAM only, never swapped (Linux 6.4+)
	Tmpfs       Backing = "tmpfs"        // RAM, but its pages may be swapped out
	Disk        Backing = "disk"         // any other filesystem
)

// NeverSwapped reports whether b keeps files in RAM only.
func (b Backing) NeverSwapped() bool { return b == RAMFS || b == TmpfsNoSwap }

// BackingOf tells what holds dir: the filesystem type from statfs and, for
// a tmpfs, whether the mount dir is on has the noswap option, from the
// entry of /proc/self/mountinfo with dir's mount id.
func BackingOf(dir string) (Backing, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return "", fmt.Errorf("statfs %s: %w", dir, err)
	}
	switch int64(st.Type) {
	case ramfsMagic:
		return RAMFS, nil
	case tmpfsMagic:
	default:
		return Disk, nil
	}
	m, err := mountOf(dir)
	if err != nil {
		return "", err
	}
	if m.fsType == "tmpfs" && slices.Contains(m.superOpts, "noswap") {
		return TmpfsNoSwap, nil
	}
	return Tmpfs, nil
}

// mountEntry is one line of /proc/self/mountinfo (proc(5)).
type mountEntry struct {
	id         uint64
	mountPoint string
	fsType     string
	superOpts  []string
}

// mountOf returns the mount dir is on: the entry with dir's mount id, or,
// before Linux 5.8 (statx reports no mount id), the last mounted entry
// whose mount point is the longest prefix of dir.
func mountOf(dir string) (mountEntry, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return mountEntry{}, fmt.Errorf("reading mounts: %w", err)
	}
	defer f.Close()
	entries, err := parseMountinfo(f)
	if err != nil {
		return mountEntry{}, err
	}
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, dir, 0, unix.STATX_MNT_ID, &stx); err == nil && stx.Mask&unix.STATX_MNT_ID != 0 {
		for _, e := range entries {
			if e.id == stx.Mnt_id {
				return e, nil
			}
		}
		return mountEntry{}, fmt.Errorf("mount %d of %s is not in /proc/self/mountinfo", stx.Mnt_id, dir)
	}
	return longestPrefix(entries, dir)
}

func longestPrefix(entries []mountEntry, dir string) (mountEntry, error) {
	path, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return mountEntry{}, fmt.Errorf("resolving %s: %w", dir, err)
	}
	best := -1
	for i, e := range entries {
		within := path == e.mountPoint || e.mountPoint == "/" || strings.HasPrefix(path, e.mountPoint+"/")
		if within && (best < 0 || len(e.mountPoint) >= len(entries[best].mountPoint)) {
			best = i
		}
	}
	if best < 0 {
		return mountEntry{}, fmt.Errorf("no mount holds %s", path)
	}
	return entries[best], nil
}

// parseMountinfo reads lines like
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//
// keeping the mount id, mount point, filesystem type and super options.
func parseMountinfo(r io.Reader) ([]mountEntry, error) {
	var entries []mountEntry
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := slices.Index(fields, "-")
		if sep < 6 || len(fields) < sep+4 {
			return nil, fmt.Errorf("mountinfo line %q: unexpected format", sc.Text())
		}
		id, err := strconv.ParseUint(fields[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("mountinfo line %q: %w", sc.Text(), err)
		}
		entries = append(entries, mountEntry{id: id, mountPoint: unescapeOctal(fields[4]),
			fsType: fields[sep+1], superOpts: strings.Split(fields[sep+3], ",")})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading mountinfo: %w", err)
	}
	return entries, nil
}

// unescapeOctal undoes the kernel's \ooo escapes of space, tab, newline
// and backslash in mount points.
func unescapeOctal(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
