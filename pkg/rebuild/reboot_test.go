package rebuild_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/pkg/rebuild"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
	"github.com/google/go-cmp/cmp"
)

func TestNeedsReboot(t *testing.T) {
	n := newNix(t)
	repo := nixtest.NewRepo(t, "main")
	stamp := time.Now().String()
	booted := buildSystem(t, n, repo, nixtest.FlakeOptions{Marker: "booted " + stamp, Kernel: "6.6.1"})
	sameKernel := buildSystem(t, n, repo, nixtest.FlakeOptions{Marker: "same " + stamp, Kernel: "6.6.1"})
	newKernel := buildSystem(t, n, repo, nixtest.FlakeOptions{Marker: "new " + stamp, Kernel: "6.6.2", Initrd: "initrd 2"})
	newModules := buildSystem(t, n, repo, nixtest.FlakeOptions{Marker: "modules " + stamp, Kernel: "6.6.1", KernelModules: "zfs"})

	// Like /run/booted-system: a link to the store path.
	link := filepath.Join(t.TempDir(), "booted-system")
	if err := os.Symlink(booted, link); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		current string
		want    []string
	}{
		{"same system", booted, nil},
		{"other system, same kernel", sameKernel, nil},
		{"new kernel and initrd", newKernel, []string{"kernel", "initrd"}},
		{"new modules", newModules, []string{"kernel-modules"}},
	}
	for _, tt := range tests {
		reboot, parts, err := rebuild.NeedsReboot(link, tt.current)
		if err != nil || reboot != (len(tt.want) > 0) || !cmp.Equal(parts, tt.want) {
			t.Errorf("NeedsReboot(%s) = %v, %q, %v; want %v, %q", tt.name, reboot, parts, err, len(tt.want) > 0, tt.want)
		}
	}
	if _, _, err := rebuild.NeedsReboot(filepath.Join(t.TempDir(), "missing"), booted); err == nil {
		t.Errorf("NeedsReboot(missing booted system) = nil error; want an error")
	}
}
