package secrets

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func TestIsRAMMagic(t *testing.T) {
	tests := []struct {
		magic int64
		want  bool
	}{
		{0x01021994, true},  // tmpfs
		{0x858458f6, true},  // ramfs
		{0xef53, false},     // ext4
		{0x794c7630, false}, // overlayfs
		{0x9123683e, false}, // btrfs
	}
	for _, tt := range tests {
		if got := isRAMMagic(tt.magic); got != tt.want {
			t.Errorf("isRAMMagic(%#x) = %v; want %v", tt.magic, got, tt.want)
		}
	}
}

// mountType returns the filesystem type /proc/mounts lists for dir.
func mountType(t *testing.T, dir string) string {
	t.Helper()
	f, err := os.Open("/proc/mounts")
	if err != nil {
		t.Fatalf("reading mounts: %v", err)
	}
	defer f.Close()
	typ := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 2 && fields[1] == dir {
			typ = fields[2]
		}
	}
	return typ
}

func TestIsRAMFS(t *testing.T) {
	for _, dir := range []string{"/dev/shm", "/proc", "/"} {
		typ := mountType(t, dir)
		if typ == "" {
			continue
		}
		got, err := IsRAMFS(dir)
		want := typ == "tmpfs" || typ == "ramfs"
		if err != nil || got != want {
			t.Errorf("IsRAMFS(%q) = %v, %v; want %v (mounted as %s)", dir, got, err, want, typ)
		}
	}
}

// mountAt mounts fstype with opts on a new directory and returns it; the
// mount goes when the test ends. Mounting needs root: without it the test
// fails, it does not skip.
func mountAt(t *testing.T, fstype, opts string) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount(fstype, dir, fstype, 0, opts); err != nil {
		t.Fatalf("mounting a %s (%s) on %s: %v (these tests need root)", fstype, opts, dir, err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

func TestBackingOf(t *testing.T) {
	swappable := mountAt(t, "tmpfs", "size=1m")
	noswap := mountAt(t, "tmpfs", "size=1m,noswap")
	ramfs := mountAt(t, "ramfs", "")
	for _, d := range []string{swappable, noswap, ramfs} {
		if err := os.Mkdir(filepath.Join(d, "secrets.d"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		dir  string
		want Backing
	}{
		{swappable, Tmpfs},
		{filepath.Join(swappable, "secrets.d"), Tmpfs}, // like /run/avalanche-agent/secrets.d
		{noswap, TmpfsNoSwap},
		{filepath.Join(noswap, "secrets.d"), TmpfsNoSwap},
		{ramfs, RAMFS},
		{filepath.Join(ramfs, "secrets.d"), RAMFS},
		{"/proc", Disk},
	}
	for _, tt := range tests {
		got, err := BackingOf(tt.dir)
		if err != nil || got != tt.want {
			t.Errorf("BackingOf(%s) = %q, %v; want %q", tt.dir, got, err, tt.want)
		}
		if tt.want.NeverSwapped() != (tt.want == RAMFS || tt.want == TmpfsNoSwap) {
			t.Errorf("%q.NeverSwapped() = %v", tt.want, tt.want.NeverSwapped())
		}
	}
}

func TestParseMountinfo(t *testing.T) {
	in := `22 27 0:21 / /proc rw,relatime - proc proc rw
36 35 98:0 /mnt1 /mnt\0402 rw,noatime master:1 shared:7 - tmpfs tmpfs rw,size=4k,noswap
42 27 0:39 / /run/a\134b rw - ramfs ramfs rw,mode=751
`
	got, err := parseMountinfo(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []mountEntry{
		{id: 22, mountPoint: "/proc", fsType: "proc", superOpts: []string{"rw"}},
		{id: 36, mountPoint: "/mnt 2", fsType: "tmpfs", superOpts: []string{"rw", "size=4k", "noswap"}},
		{id: 42, mountPoint: `/run/a\b`, fsType: "ramfs", superOpts: []string{"rw", "mode=751"}},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(mountEntry{})); diff != "" {
		t.Errorf("parseMountinfo (-want +got):\n%s", diff)
	}
	if m, err := longestPrefix(got, "/proc/self"); err != nil || m.id != 22 {
		t.Errorf("longestPrefix(/proc/self) = %+v, %v; want mount 22", m, err)
	}
	if _, err := parseMountinfo(strings.NewReader("1 2 3\n")); err == nil {
		t.Errorf("parseMountinfo(short line) = nil error")
	}
}

// generation puts a generation with an owned, moded secret under dir.
func generation(t *testing.T, dir string) {
	t.Helper()
	g := filepath.Join(dir, "1", "db")
	if err := os.MkdirAll(g, 0o751); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(g, "password")
	if err := os.WriteFile(f, []byte("hunter2"), 0o400); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(f, 1234, 5678); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("db/password", filepath.Join(dir, "1", "alias")); err != nil {
		t.Fatal(err)
	}
}

// checkGeneration checks what generation wrote, as seen through dir.
func checkGeneration(t *testing.T, dir string) {
	t.Helper()
	f := filepath.Join(dir, "1", "db", "password")
	b, err := os.ReadFile(filepath.Join(dir, "1", "alias"))
	fi, statErr := os.Stat(f)
	if err != nil || statErr != nil || string(b) != "hunter2" {
		t.Fatalf("generation under %s: %q, %v, %v; want hunter2 through the alias", dir, b, err, statErr)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Perm() != 0o400 || st.Uid != 1234 || st.Gid != 5678 {
		t.Errorf("%s: mode %v, owner %d:%d; want 0400 1234:5678", f, fi.Mode().Perm(), st.Uid, st.Gid)
	}
}

// TestEnsureRAMFSOverSwappableTmpfs: secrets.d inside a swappable tmpfs
// (like /run) gets its own noswap tmpfs; the generation already there moves
// onto it and nothing stays behind under the mount.
func TestEnsureRAMFSOverSwappableTmpfs(t *testing.T) {
	dir := filepath.Join(mountAt(t, "tmpfs", "size=1m"), "secrets.d")
	generation(t, dir)
	b, err := EnsureRAMFS(dir, false)
	if err != nil || b != TmpfsNoSwap {
		t.Fatalf("EnsureRAMFS(%s) = %q, %v; want %q", dir, b, err, TmpfsNoSwap)
	}
	if got, err := BackingOf(dir); got != TmpfsNoSwap || err != nil {
		t.Errorf("BackingOf(%s) after EnsureRAMFS = %q, %v", dir, got, err)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o751 {
		t.Errorf("mode of the mounted %s = %v; want 0751", dir, fi.Mode().Perm())
	}
	checkGeneration(t, dir)
	if b, err := EnsureRAMFS(dir, false); b != TmpfsNoSwap || err != nil { // no second mount
		t.Errorf("EnsureRAMFS(%s) twice = %q, %v", dir, b, err)
	}
	if err := unix.Unmount(dir, 0); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("left under the mount on swappable memory: %v", left)
	}
}

func TestEnsureRAMFSOnDisk(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "secrets.d")
	if b, _ := BackingOf(filepath.Dir(dir)); b != Disk {
		t.Fatalf("%s is on %q; this test needs a disk-backed temporary directory", dir, b)
	}
	b, err := EnsureRAMFS(dir, false)
	if err != nil || b != TmpfsNoSwap {
		t.Fatalf("EnsureRAMFS(%s) = %q, %v; want %q", dir, b, err, TmpfsNoSwap)
	}
	unix.Unmount(dir, unix.MNT_DETACH)
}

// TestEnsureRAMFSWithoutNoswap plays a kernel before 6.4, which rejects
// the noswap option with EINVAL: the fallback is a real ramfs.
func TestEnsureRAMFSWithoutNoswap(t *testing.T) {
	oldKernel(t)
	dir := filepath.Join(mountAt(t, "tmpfs", "size=1m"), "secrets.d")
	generation(t, dir)
	b, err := EnsureRAMFS(dir, false)
	if err != nil || b != RAMFS {
		t.Fatalf("EnsureRAMFS(%s) on a kernel without noswap = %q, %v; want %q", dir, b, err, RAMFS)
	}
	if typ := mountType(t, dir); typ != "ramfs" {
		t.Errorf("%s is mounted as %q; want ramfs", dir, typ)
	}
	checkGeneration(t, dir)
	unix.Unmount(dir, unix.MNT_DETACH)
}

func oldKernel(t *testing.T) {
	t.Helper()
	mount = func(source, target, fstype string, flags uintptr, data string) error {
		if strings.Contains(data, "noswap") {
			return unix.EINVAL
		}
		return unix.Mount(source, target, fstype, flags, data)
	}
	t.Cleanup(func() { mount = unix.Mount })
}

// TestEnsureRAMFSRefusesSwappable: when no never-swapped filesystem can be
// mounted, a swappable tmpfs is refused with a message saying what to do,
// unless swap is explicitly accepted; nothing in dir is touched.
func TestEnsureRAMFSRefusesSwappable(t *testing.T) {
	mount = func(string, string, string, uintptr, string) error { return unix.EPERM }
	t.Cleanup(func() { mount = unix.Mount })
	dir := filepath.Join(mountAt(t, "tmpfs", "size=1m"), "secrets.d")
	generation(t, dir)
	b, err := EnsureRAMFS(dir, false)
	if err == nil || !strings.Contains(err.Error(), "can be swapped out") || !strings.Contains(err.Error(), "allowSwappable") {
		t.Errorf("EnsureRAMFS(%s) without mount rights = %q, %v; want the swappable refusal", dir, b, err)
	}
	checkGeneration(t, dir)
	if b, err := EnsureRAMFS(dir, true); b != Tmpfs || err != nil {
		t.Errorf("EnsureRAMFS(%s, allowSwappable) = %q, %v; want %q accepted", dir, b, err, Tmpfs)
	}
	checkGeneration(t, dir)
}
