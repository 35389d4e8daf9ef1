package secrets

import (
	"bufio"
	"os"
	"strings"
	"syscall"
	"testing"
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
		t.Skip("no /proc/mounts")
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

func TestEnsureRAMFS(t *testing.T) {
	dir := t.TempDir()
	if ok, _ := IsRAMFS(dir); ok {
		t.Skip("the temporary directory is already on tmpfs")
	}
	err := EnsureRAMFS(dir)
	if err != nil && strings.Contains(err.Error(), "operation not permitted") {
		t.Skipf("cannot mount: %v", err)
	}
	if err != nil {
		t.Fatalf("EnsureRAMFS(%q) = %v", dir, err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	if ok, err := IsRAMFS(dir); !ok || err != nil {
		t.Errorf("IsRAMFS(%q) after EnsureRAMFS = %v, %v; want true", dir, ok, err)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o751 {
		t.Errorf("mode of the mounted %s = %v; want 0751", dir, fi.Mode().Perm())
	}
	if err := EnsureRAMFS(dir); err != nil { // already RAM-backed: no second mount
		t.Errorf("EnsureRAMFS(%q) twice = %v", dir, err)
	}
}
