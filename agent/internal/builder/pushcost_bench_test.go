package builder

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/pkg/gitsync"
	"github.com/avalanche-fleet/avalanche/pkg/gitsync/gittest"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
	"github.com/avalanche-fleet/avalanche/pkg/release"
)

// fleetSize is the inventory's host count (nixos/lib/inventory.nix).
const fleetSize = 17

// BenchmarkPushCost measures what a push costs the builder for a fleet of
// 17 test-flake hosts whose evaluation builds an attribute set like a
// NixOS evaluation (AVALANCHE_BENCH_EVALWORK entries, default 200,000;
// 1,000,000 peaks near 700 MB like NixOS): the time from the pushed commit
// to its release published, with one host at a time and with the default
// bounded parallelism, for the first commit (every host built), a commit
// that changes one host, and one that changes only kubernetes/. peak-child
// is the largest Nix process (getrusage of the children).
func BenchmarkPushCost(b *testing.B) {
	nixtest.Require(b)
	work := 200_000
	if v := os.Getenv("AVALANCHE_BENCH_EVALWORK"); v != "" {
		fmt.Sscan(v, &work)
	}
	for _, par := range []int{1, DefaultParallelism} {
		b.Run(fmt.Sprintf("parallelism-%d", par), func(b *testing.B) {
			for b.Loop() {
				f := newPushFleet(b, par, work)
				hosts := f.hosts("v1")
				f.measure(b, "first", f.commit(b, hosts, nil, "every host"))
				hosts[3].Marker += " changed"
				f.measure(b, "one-host", f.commit(b, hosts, nil, "one host"))
				f.measure(b, "kubernetes-only", f.commit(b, hosts, map[string]string{"kubernetes/app.yaml": "replicas: 2\n"}, "kubernetes only"))
			}
			var ru syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru)
			b.ReportMetric(float64(ru.Maxrss)/1024, "peak-child-MiB")
		})
	}
}

// pushFleet is a fleet repository served over HTTP and a builder.
type pushFleet struct {
	work    *gittest.WorkRepo
	bare    string
	repo    *gitsync.Repo
	builder *Builder
	marker  string
	work2   int
}

func newPushFleet(b *testing.B, par, work int) *pushFleet {
	f := &pushFleet{work: gittest.NewRepo(b), bare: gittest.NewBare(b), marker: fmt.Sprint(time.Now().UnixNano()), work2: work}
	f.work.Git(b, "-C", f.bare, "config", "http.receivepack", "true")
	srv := gittest.StartHTTPServer(b, f.bare, "")
	keyFile, _ := gittest.NewSSHKey(b, b.TempDir(), "builder")
	signer, err := release.LoadSigner(keyFile)
	if err != nil {
		b.Fatal(err)
	}
	cache := nixtest.NewCache(b, "push-cost-1")
	f.repo = &gitsync.Repo{Dir: filepath.Join(b.TempDir(), "repo.git"), Remote: gitsync.Remote{URL: srv.URL},
		Branches: []string{"main", release.Branch}}
	f.builder = &Builder{Name: "cardinal", RepoDir: f.repo.Dir, Branch: "main", Git: f.repo,
		Nix:      &rebuild.Nix{ExtraArgs: nixtest.Args(), Env: nixtest.Env(b)},
		CacheURL: cache.URL, SigningKeyFile: cache.SecretKeyFile, Signer: signer,
		GCRootDir: filepath.Join(b.TempDir(), "gcroots"), Parallelism: par}
	return f
}

// hosts are 17 systems at version v, each with closure paths of its own.
func (f *pushFleet) hosts(v string) []nixtest.FlakeOptions {
	var out []nixtest.FlakeOptions
	for i := range fleetSize {
		m := fmt.Sprintf("%s host%02d %s", f.marker, i, v)
		out = append(out, nixtest.FlakeOptions{Name: fmt.Sprintf("host%02d", i), Marker: m, Kernel: "kernel " + m,
			Initrd: "initrd " + m, KernelModules: "modules " + m, EvalWork: f.work2, Deps: 5})
	}
	return out
}

func (f *pushFleet) commit(b *testing.B, hosts []nixtest.FlakeOptions, files map[string]string, msg string) string {
	if err := nixtest.WriteFleet(f.work.Dir, hosts); err != nil {
		b.Fatal(err)
	}
	c := f.work.Commit(b, files, msg)
	f.work.Push(b, f.bare, "HEAD:refs/heads/main")
	return c
}

// measure fetches and releases commit as the builder role does, and
// reports the time from the fetch to the release published.
func (f *pushFleet) measure(b *testing.B, name, commit string) {
	ctx := context.Background()
	start := time.Now()
	if _, err := f.repo.Fetch(ctx); err != nil {
		b.Fatal(err)
	}
	found, err := f.builder.Release(ctx, commit)
	if err != nil {
		b.Fatalf("Release(%s) = %v", name, err)
	}
	if len(found.Release.Hosts) != fleetSize {
		b.Fatalf("release of %s names %d hosts; want %d", name, len(found.Release.Hosts), fleetSize)
	}
	b.ReportMetric(time.Since(start).Seconds(), name+"-s")
}
