package rebuild_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/avalanche-fleet/avalanche/pkg/rebuild"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
)

// published is a system a "builder" built, signed and copied to a binary
// cache, then deleted from the local store: a host lacks all of it.
type published struct {
	out     string
	closure []string
	cache   *nixtest.Cache
}

// publish builds a fake system with its own kernel, initrd and modules,
// copies its closure into a new cache and deletes it from the store.
func publish(t *testing.T, n *rebuild.Nix) published {
	t.Helper()
	ctx := context.Background()
	marker := t.Name() + time.Now().String()
	repo := nixtest.NewRepo(t, "main")
	s := commitSystem(t, n, repo, nixtest.FlakeOptions{Marker: marker,
		Kernel: "kernel " + marker, Initrd: "initrd " + marker, KernelModules: "modules " + marker})
	root := filepath.Join(t.TempDir(), "root")
	out, err := n.Build(ctx, s.ev, root)
	if err != nil {
		t.Fatal(err)
	}
	cache := nixtest.NewCache(t, "test-cache-1")
	if err := n.Sign(ctx, cache.SecretKeyFile, out); err != nil {
		t.Fatalf("Sign = %v", err)
	}
	if err := n.Copy(ctx, cache.URL, out); err != nil {
		t.Fatalf("Copy = %v", err)
	}
	p := published{out: out, closure: nixtest.Closure(t, out), cache: cache}
	if len(p.closure) != 4 {
		t.Fatalf("closure of %s = %v; want the system, kernel, initrd and modules", out, p.closure)
	}
	if err := os.Remove(root); err != nil {
		t.Fatal(err)
	}
	nixtest.DeleteFromStore(t, append([]string{s.ev.DrvPath}, p.closure...)...)
	return p
}

func (p published) trusted(t *testing.T, url string) rebuild.Cache {
	t.Helper()
	k, err := rebuild.ParseCacheKey(p.cache.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return rebuild.Cache{URL: url, Keys: []rebuild.CacheKey{k}}
}

// TestSubstitute: a host fetches a system it lacks from an HTTP binary
// cache, reports progress, and runs no evaluation or build to get it.
func TestSubstitute(t *testing.T) {
	n := newNix(t)
	p := publish(t, n)
	server := p.cache.Serve(t)
	rec := nixtest.NewRecorder(t)
	host := &rebuild.Nix{ExtraArgs: nixtest.Args(), Env: nixtest.Env(t), BinDir: rec.Dir}
	var mu sync.Mutex
	var reports []rebuild.SubstituteProgress
	root := filepath.Join(t.TempDir(), "gcroots", "system-1")

	out, err := host.Substitute(context.Background(), p.trusted(t, server.URL), p.out, root, func(sp rebuild.SubstituteProgress) {
		mu.Lock()
		defer mu.Unlock()
		reports = append(reports, sp)
	})
	if err != nil || out != p.out {
		t.Fatalf("Substitute = %q, %v; want %q", out, err, p.out)
	}
	for _, path := range p.closure {
		if err := exec.Command("nix-store", "--check-validity", path).Run(); err != nil {
			t.Errorf("%s is not valid after Substitute", path)
		}
	}
	if target, err := os.Readlink(root); err != nil || target != p.out || !registeredRoot(t, root) {
		t.Errorf("gc root %s -> %q, %v (registered %v); want a registered root -> %s", root, target, err, registeredRoot(t, root), p.out)
	}
	last := reports[len(reports)-1]
	if reports[0].PathsDone != 0 || last.Paths != 4 || last.PathsDone != 4 || last.BytesDone != last.Bytes || last.Bytes == 0 {
		t.Errorf("progress reports = %+v; want 0 of 4 paths first and 4 of 4 (all bytes) last", reports)
	}
	calls := rec.Calls(t)
	if ev := nixtest.Evaluations(calls); len(ev) != 0 || len(calls) == 0 {
		t.Errorf("Substitute ran %d nix commands, evaluations/builds %q; want none", len(calls), ev)
	}
	t.Logf("nix commands: %q", calls)
}

// TestSubstituteRefuses: a bad cache entry is refused with its class before
// anything is added to the store.
func TestSubstituteRefuses(t *testing.T) {
	tests := []struct {
		name  string
		spoil func(t *testing.T, p published) rebuild.Cache
		class error
		want  string
	}{
		{"signed by another key", func(t *testing.T, p published) rebuild.Cache {
			other := nixtest.NewCache(t, "test-cache-2")
			k, _ := rebuild.ParseCacheKey(other.PublicKey)
			return rebuild.Cache{URL: p.cache.URL, Keys: []rebuild.CacheKey{k}}
		}, rebuild.ErrUntrustedPath, "no valid signature by a trusted key (signed by test-cache-1)"},
		{"tampered narinfo", func(t *testing.T, p published) rebuild.Cache {
			edit(t, p.cache.NarinfoFile(p.out), regexp.MustCompile(`(?m)^NarSize: (\d+)`), "NarSize: 1${1}")
			return p.trusted(t, p.cache.URL)
		}, rebuild.ErrUntrustedPath, "no valid signature by a trusted key"},
		{"unsigned narinfo", func(t *testing.T, p published) rebuild.Cache {
			edit(t, p.cache.NarinfoFile(p.out), regexp.MustCompile(`(?m)^Sig: .*\n`), "")
			return p.trusted(t, p.cache.URL)
		}, rebuild.ErrUntrustedPath, "carries no signature"},
		{"dependency missing from the cache", func(t *testing.T, p published) rebuild.Cache {
			remove(t, p.cache.NarinfoFile(dependency(t, p, "kernel")))
			return p.trusted(t, p.cache.URL)
		}, rebuild.ErrNotInCache, "-kernel"},
		{"NAR missing from the cache", func(t *testing.T, p published) rebuild.Cache {
			nars, _ := filepath.Glob(filepath.Join(p.cache.Dir, "nar", "*.nar*"))
			for _, f := range nars {
				remove(t, f)
			}
			return p.trusted(t, p.cache.URL)
		}, rebuild.ErrSubstitute, "substitution error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newNix(t)
			p := publish(t, n)
			_, err := n.Substitute(context.Background(), tt.spoil(t, p), p.out, "", nil)
			if !errors.Is(err, tt.class) || rebuild.IsTransient(err) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Substitute = %v; want %v mentioning %q", err, tt.class, tt.want)
			}
			t.Logf("message: %v", err)
			if exec.Command("nix-store", "--check-validity", p.out).Run() == nil {
				t.Errorf("%s became valid although Substitute refused it", p.out)
			}
		})
	}
}

// TestNixRefusesTamperedNarinfoToo: behind the check, Nix itself (with the
// options Substitute passes) refuses the tampered narinfo.
func TestNixRefusesTamperedNarinfoToo(t *testing.T) {
	n := newNix(t)
	p := publish(t, n)
	edit(t, p.cache.NarinfoFile(p.out), regexp.MustCompile(`(?m)^NarSize: (\d+)`), "NarSize: 1${1}")
	cmd := exec.Command("nix-store", "--realise", p.out, "--option", "substituters", p.cache.URL,
		"--option", "trusted-public-keys", p.cache.PublicKey, "--option", "require-sigs", "true")
	cmd.Env = append(os.Environ(), nixtest.Env(t)...)
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("nix-store --realise accepted a tampered narinfo:\n%s", out)
	}
}

// TestSubstituteCacheDown: an unreachable cache is transient, not the
// release's fault.
func TestSubstituteCacheDown(t *testing.T) {
	n := newNix(t)
	p := publish(t, n)
	server := p.cache.Serve(t)
	server.Close()
	n.ExtraArgs = append(n.ExtraArgs, "--option", "download-attempts", "1")
	_, err := n.Substitute(context.Background(), p.trusted(t, server.URL), p.out, "", nil)
	if !errors.Is(err, rebuild.ErrTransient) || !rebuild.IsTransient(err) || errors.Is(err, rebuild.ErrNotInCache) {
		t.Fatalf("Substitute from a closed server = %v; want ErrTransient", err)
	}
	t.Logf("message: %v", err)
}

// TestSubstituteValidPathAsksNoCache: a system the host has already (a
// rollback, a re-deploy) needs no cache at all.
func TestSubstituteValidPathAsksNoCache(t *testing.T) {
	n := newNix(t)
	repo := nixtest.NewRepo(t, "main")
	out := buildSystem(t, n, repo, nixtest.FlakeOptions{Marker: t.Name() + time.Now().String()})
	k, _ := rebuild.ParseCacheKey(nixtest.NewCache(t, "k").PublicKey)
	root := filepath.Join(t.TempDir(), "root")
	got, err := n.Substitute(context.Background(), rebuild.Cache{URL: "http://127.0.0.1:1", Keys: []rebuild.CacheKey{k}}, out, root, nil)
	if err != nil || got != out {
		t.Fatalf("Substitute of a valid path = %q, %v; want %q without asking the (closed) cache", got, err, out)
	}
}

func TestParseCacheKey(t *testing.T) {
	c := nixtest.NewCache(t, "cache.example.org-1")
	k, err := rebuild.ParseCacheKey(c.PublicKey)
	if err != nil || k.Name != "cache.example.org-1" || k.String() != c.PublicKey {
		t.Fatalf("ParseCacheKey(%q) = %+v, %v; want it back", c.PublicKey, k, err)
	}
	for _, bad := range []string{"", "nokey", ":AAAA", "name:notbase64!", "name:AAAA"} {
		if _, err := rebuild.ParseCacheKey(bad); err == nil {
			t.Errorf("ParseCacheKey(%q) = nil; want an error", bad)
		}
	}
}

// dependency returns the closure path whose name ends in suffix.
func dependency(t *testing.T, p published, suffix string) string {
	t.Helper()
	for _, path := range p.closure {
		if strings.HasSuffix(path, "-"+suffix) {
			return path
		}
	}
	t.Fatalf("no %s in %v", suffix, p.closure)
	return ""
}

func edit(t *testing.T, file string, re *regexp.Regexp, repl string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	changed := re.ReplaceAll(b, []byte(repl))
	if cmp.Equal(b, changed) {
		t.Fatalf("%s: %s matched nothing", file, re)
	}
	if err := os.WriteFile(file, changed, 0o644); err != nil {
		t.Fatal(err)
	}
}

func remove(t *testing.T, file string) {
	t.Helper()
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
}

// TestSubstituteAfterCacheKeyRotation: paths re-signed in the cache with a
// new key (nix store sign --store) substitute on a host that trusts only
// the new key, as docs/builder.md's rotation says.
func TestSubstituteAfterCacheKeyRotation(t *testing.T) {
	n := newNix(t)
	p := publish(t, n)
	next := nixtest.NewCache(t, "test-cache-2")
	sign := exec.Command("nix", "--extra-experimental-features", "nix-command", "store", "sign",
		"--store", p.cache.URL, "--key-file", next.SecretKeyFile, "--all")
	if out, err := sign.CombinedOutput(); err != nil {
		t.Fatalf("nix store sign --store %s --all: %v\n%s", p.cache.URL, err, out)
	}
	k, _ := rebuild.ParseCacheKey(next.PublicKey)
	out, err := n.Substitute(context.Background(), rebuild.Cache{URL: p.cache.URL, Keys: []rebuild.CacheKey{k}}, p.out, "", nil)
	if err != nil || out != p.out {
		t.Fatalf("Substitute trusting only the new key = %q, %v; want %s", out, err, p.out)
	}
}
