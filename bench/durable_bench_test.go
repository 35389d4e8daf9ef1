package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/pkg/rebuild"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
)

// durableDeps is the closure BenchmarkDurable makes durable: the
// toplevel and this many 64 KiB paths (row 9's 1,004 paths in the full form).
func durableDeps() int { return samples(200, closureDeps) }

// BenchmarkDurable measures what making a deployment durable costs (issue
// 29): listing the new system's closure and one syncfs(2) per filesystem
// holding it, right after it was built (local) or substituted from a
// binary cache (builder mode), while all of it is still in the page cache.
// The build or substitution before it is timed too, for scale.
func BenchmarkDurable(b *testing.B) {
	nixtest.Require(b)
	for _, mode := range []string{"local", "builder"} {
		b.Run(mode, func(b *testing.B) {
			ctx := context.Background()
			n := &rebuild.Nix{ExtraArgs: nixtest.Args(), Env: nixtest.Env(b)}
			repo, roots := nixtest.NewRepo(b, "main"), b.TempDir()
			var syncs, makes []time.Duration
			i := 0
			for b.Loop() {
				i++
				m := fmt.Sprintf("durable %d %d", time.Now().UnixNano(), i) // nothing shared with other tests' roots
				opts := nixtest.FlakeOptions{Name: hostName, Marker: m, Kernel: "kernel " + m, Initrd: "initrd " + m,
					KernelModules: "modules " + m, Deps: durableDeps()}
				commit := repo.WriteFlake(b, opts, "durable")
				ev, err := n.Evaluate(ctx, rebuild.FlakeRef(repo.Bare, "main", commit), hostName)
				if err != nil {
					b.Fatal(err)
				}
				root := filepath.Join(roots, fmt.Sprint(i))
				t0 := time.Now()
				out, err := n.Build(ctx, ev, root)
				if err != nil {
					b.Fatal(err)
				}
				made := time.Since(t0)
				if mode == "builder" {
					out, made = resubstitute(b, n, ev.DrvPath, out, root)
				}
				makes = append(makes, made)
				t1 := time.Now()
				closure, err := n.Closure(ctx, out)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := rebuild.Syncfs(append(closure, rebuild.DBDir)...); err != nil {
					b.Fatal(err)
				}
				syncs = append(syncs, time.Since(t1))
			}
			reportDist(b, "sync", syncs)
			reportDist(b, mode, makes)
		})
	}
}

// resubstitute puts out's closure into a signed file:// binary cache,
// deletes it (and its derivation) from the store and substitutes it back, as a builder-mode
// host gets its system; it returns out and how long the substitution took.
func resubstitute(b *testing.B, n *rebuild.Nix, drv, out, root string) (string, time.Duration) {
	ctx := context.Background()
	cache := nixtest.NewCache(b, "durable-bench")
	key, err := rebuild.ParseCacheKey(cache.PublicKey)
	if err == nil {
		err = n.Sign(ctx, cache.SecretKeyFile, out)
	}
	if err == nil {
		err = n.Copy(ctx, cache.URL, out)
	}
	if err != nil {
		b.Fatal(err)
	}
	closure := append(nixtest.Closure(b, drv), nixtest.Closure(b, out)...) // the derivation holds its sources alive
	if err := os.Remove(root); err != nil {
		b.Fatal(err)
	}
	nixtest.DeleteFromStore(b, closure...)
	t0 := time.Now()
	got, err := n.Substitute(ctx, rebuild.Cache{URL: cache.URL, Keys: []rebuild.CacheKey{key}}, out, root, nil)
	if err != nil {
		b.Fatal(err)
	}
	return got, time.Since(t0)
}

// BenchmarkStoreVerify measures the store check after an unclean shutdown
// (issue 29): `nix-store --verify-path` over a system's closure (row 9's
// 1,004 paths, 64 MiB, in the full form), with the page cache dropped
// first so every byte comes from the disk, as after a boot. It reports
// the seconds per GB of closure.
func BenchmarkStoreVerify(b *testing.B) {
	nixtest.Require(b)
	ctx := context.Background()
	n := &rebuild.Nix{ExtraArgs: nixtest.Args(), Env: nixtest.Env(b)}
	repo := nixtest.NewRepo(b, "main")
	m := fmt.Sprintf("verify %d", time.Now().UnixNano())
	commit := repo.WriteFlake(b, nixtest.FlakeOptions{Name: hostName, Marker: m, Kernel: "kernel " + m, Initrd: "initrd " + m,
		KernelModules: "modules " + m, Deps: durableDeps()}, "verify")
	ev, err := n.Evaluate(ctx, rebuild.FlakeRef(repo.Bare, "main", commit), hostName)
	if err != nil {
		b.Fatal(err)
	}
	out, err := n.Build(ctx, ev, filepath.Join(b.TempDir(), "root"))
	if err != nil {
		b.Fatal(err)
	}
	closure, err := n.Closure(ctx, out)
	if err != nil {
		b.Fatal(err)
	}
	size := duSize(out)
	for _, p := range closure {
		if p != out {
			size += duSize(p)
		}
	}
	var total time.Duration
	for b.Loop() {
		if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0o200); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		if damaged, err := n.Verify(ctx, closure); err != nil || len(damaged) > 0 {
			b.Fatalf("Verify = %q, %v", damaged, err)
		}
		total += time.Since(t0)
	}
	per := total / time.Duration(b.N)
	b.ReportMetric(float64(len(closure)), "paths")
	b.ReportMetric(float64(size)/(1<<20), "closure-MiB")
	b.ReportMetric(per.Seconds()*float64(1<<30)/float64(size), "s/GiB")
}
