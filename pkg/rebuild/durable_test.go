package rebuild_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/avalanche-fleet/avalanche/pkg/rebuild"
)

func TestSyncfsCountsFilesystems(t *testing.T) {
	dir := t.TempDir()
	mnt := filepath.Join(dir, "tmpfs")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mounting a tmpfs (run as root): %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(mnt, syscall.MNT_DETACH) })
	file := filepath.Join(dir, "file")
	os.WriteFile(file, []byte("x"), 0o644)
	link := filepath.Join(mnt, "link")
	os.Symlink(file, link) // lies on the tmpfs, points to the other one
	tests := []struct {
		name  string
		paths []string
		want  int
	}{
		{"one filesystem, twice", []string{dir, file}, 1},
		{"two filesystems", []string{file, mnt}, 2},
		{"a link counts where it lies", []string{file, link}, 2},
		{"missing paths are skipped", []string{file, filepath.Join(dir, "absent")}, 1},
		{"nothing", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := rebuild.Syncfs(tt.paths...)
			if err != nil || res.Filesystems != tt.want {
				t.Errorf("Syncfs(%q) = %+v, %v; want %d filesystems", tt.paths, res, err, tt.want)
			}
		})
	}
}

func TestActivationPaths(t *testing.T) {
	got := rebuild.ActivationPaths("/nix/var/nix/profiles/system")
	if got[0] != "/nix/var/nix/profiles" {
		t.Errorf("ActivationPaths = %q; want the profile's directory first", got)
	}
}
