package builder

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/avalanche-fleet/avalanche/agent/internal/fault"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
	"github.com/avalanche-fleet/avalanche/pkg/release"
)

// TestBuilderReuploadsWhatTheCacheLost: a host whose system did not change
// is skipped only while the cache still holds its whole closure. After the
// cache lost paths of it (a garbage collection), the next release uploads
// them again, and a host then substitutes the system.
func TestBuilderReuploadsWhatTheCacheLost(t *testing.T) {
	w := newWorld(t)
	first := w.build(t, w.commit(t, w.hosts("1", "1"), "fleet"))
	beta := first.Hosts["beta"].OutPath
	lost := []string{w.cache.NarinfoFile(beta)}
	for _, p := range nixtest.Closure(t, beta) {
		if strings.Contains(p, "-kernel") {
			lost = append(lost, w.cache.NarinfoFile(p))
		}
	}
	for _, f := range lost {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	second := w.build(t, w.commit(t, w.hosts("2", "1"), "alpha only"))
	if second.Hosts["beta"] != first.Hosts["beta"] {
		t.Fatalf("beta changed: %+v; want the same system", second.Hosts["beta"])
	}
	for _, f := range lost {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("the cache still lacks %s after the release: %v", filepath.Base(f), err)
		}
	}
	if p := w.builder.Progress(); p.Hosts["beta"].Phase == PhaseUnchanged {
		t.Errorf("beta's phase = %q; want it copied again", p.Hosts["beta"].Phase)
	}
	w.evict(t, second.Release)
	if out, err := w.agent(t, "beta").deploy(t, second.Commit); err != nil || out != beta {
		t.Errorf("beta's deployment = %q, %v; want %s", out, err, beta)
	}
}

// TestBuilderMachineTroubleIsNotPublished: an evaluation killed by the
// kernel's OOM killer (for real: in a memory cgroup too small for it) and a
// build for a system no machine can build (no remote builder up) are the
// builder's trouble. Nothing is published for that commit, the error is
// classified host trouble or transient, and the host keeps waiting.
func TestBuilderMachineTroubleIsNotPublished(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, w *world) []nixtest.FlakeOptions
		class fault.Class
		want  string
	}{
		{"evaluation killed by the OOM killer", func(t *testing.T, w *world) []nixtest.FlakeOptions {
			hosts := w.hosts("1", "1")
			hosts[0].EvalWork = 1_000_000 // about 700 MB
			w.builder.Nix.(*rebuild.Nix).BinDir = oomShim(t, w.builtRec.Dir, "nixosConfigurations.alpha.", 64<<20)
			return hosts
		}, fault.Host, "out of memory"},
		{"no builder for the system", func(t *testing.T, w *world) []nixtest.FlakeOptions {
			hosts := w.hosts("1", "1")
			hosts[0].System = otherSystem()
			return hosts
		}, fault.Transient, "is required to build"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			c := w.commit(t, tt.setup(t, w), "fleet")
			if _, err := w.repo.Fetch(context.Background()); err != nil {
				t.Fatal(err)
			}
			_, err := w.builder.Release(context.Background(), c)
			if err == nil || fault.Of(err) != tt.class || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Release = %v (class %s); want %s trouble mentioning %q", err, fault.Of(err), tt.class, tt.want)
			}
			t.Logf("message: %v", err)
			if out := w.work.Git(t, "-C", w.bare, "branch", "--list", release.Branch); out != "" {
				t.Fatalf("a release was published for the builder's own trouble")
			}
			if p := w.builder.Progress(); p.Hosts["alpha"].Phase != PhaseWaiting || p.Release != "" {
				t.Errorf("Progress = %+v; want alpha waiting, no release", p)
			}
			if _, err := w.agent(t, "alpha").deploy(t, c); !strings.Contains(fmt.Sprint(err), release.ErrNotYet.Error()) {
				t.Errorf("the host's deployment = %v; want it waiting for a release", err)
			}
		})
	}
}

// otherSystem is a Nix system this machine cannot build for.
func otherSystem() string {
	if nixtest.GoSystem() == "aarch64-linux" {
		return "x86_64-linux"
	}
	return "aarch64-linux"
}

// oomShim returns a directory of nix programs that run the ones in dir,
// except that a nix command whose arguments contain match runs in a new
// memory cgroup limited to limit bytes, where the kernel's OOM killer ends
// it. It needs the cgroup v1 memory controller or cgroup v2 with memory.
func oomShim(t *testing.T, dir, match string, limit int64) string {
	t.Helper()
	cg := memoryCgroup(t, limit)
	shim := t.TempDir()
	for _, prog := range []string{"nix-store", "nix-env"} {
		if err := os.Symlink(filepath.Join(dir, prog), filepath.Join(shim, prog)); err != nil {
			t.Fatal(err)
		}
	}
	script := fmt.Sprintf("#!/bin/sh\ncase \"$*\" in *%s*) echo $$ > %s/cgroup.procs || exit 99;; esac\nexec %s \"$@\"\n",
		match, cg, filepath.Join(dir, "nix"))
	if err := os.WriteFile(filepath.Join(shim, "nix"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return shim
}

// memoryCgroup creates a memory cgroup limited to limit bytes, without
// swap, removed when the test ends.
func memoryCgroup(t *testing.T, limit int64) string {
	t.Helper()
	name := fmt.Sprintf("avalanche-test-%d", os.Getpid())
	write := func(p, v string) error { return os.WriteFile(p, []byte(v), 0o644) }
	var dir string
	switch {
	case isDir("/sys/fs/cgroup/memory"): // cgroup v1
		dir = filepath.Join("/sys/fs/cgroup/memory", name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatalf("creating a memory cgroup (run as root): %v", err)
		}
		if err := write(filepath.Join(dir, "memory.limit_in_bytes"), fmt.Sprint(limit)); err != nil {
			t.Fatal(err)
		}
		_ = write(filepath.Join(dir, "memory.memsw.limit_in_bytes"), fmt.Sprint(limit))
		_ = write(filepath.Join(dir, "memory.swappiness"), "0")
	case hasV2Memory():
		dir = filepath.Join("/sys/fs/cgroup", name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatalf("creating a memory cgroup (run as root): %v", err)
		}
		if err := write(filepath.Join(dir, "memory.max"), fmt.Sprint(limit)); err != nil {
			t.Fatal(err)
		}
		_ = write(filepath.Join(dir, "memory.swap.max"), "0")
	default:
		t.Fatal("no memory cgroup controller: mount cgroup v1's memory hierarchy or cgroup v2 with the memory controller")
	}
	t.Cleanup(func() {
		if b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs")); len(strings.TrimSpace(string(b))) > 0 {
			_ = exec.Command("sh", "-c", "kill -9 "+strings.Join(strings.Fields(string(b)), " ")).Run()
		}
		_ = os.Remove(dir)
	})
	return dir
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

func hasV2Memory() bool {
	b, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
	return err == nil && strings.Contains(string(b), "memory")
}
