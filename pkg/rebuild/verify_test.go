package rebuild_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/pkg/rebuild"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
)

// damage empties a file of a store path, as a power cut after Nix
// registered the path leaves it.
func damage(t *testing.T, file string) {
	t.Helper()
	if err := os.Truncate(file, 0); err != nil {
		t.Fatal(err)
	}
}

// TestVerifyAndRepair damages a built path (it has a derivation: rebuilt)
// and a source copied into the store at evaluation (no derivation: only an
// evaluation with --repair writes it again).
func TestVerifyAndRepair(t *testing.T) {
	n := newNix(t)
	ctx := context.Background()
	repo := nixtest.NewRepo(t, "main")
	m := fmt.Sprintf("verify %d", time.Now().UnixNano())
	opts := nixtest.FlakeOptions{Marker: m, Kernel: "kernel " + m, SecretsManifest: `{"file": "${./src.txt}"}`,
		Files: map[string]string{"src.txt": "source " + m}}
	s := commitSystem(t, n, repo, opts)
	out, err := n.Build(ctx, s.ev, filepath.Join(t.TempDir(), "root"))
	if err != nil {
		t.Fatal(err)
	}
	closure, err := n.Closure(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := n.Verify(ctx, closure); err != nil || len(got) != 0 {
		t.Fatalf("Verify(intact closure) = %q, %v; want none", got, err)
	}
	var src string
	for _, p := range closure {
		if filepath.Base(p)[33:] == "src.txt" {
			src = p
		}
	}
	damage(t, filepath.Join(out, "marker"))
	damage(t, src)
	got, err := n.Verify(ctx, closure)
	slices.Sort(got)
	want := []string{out, src}
	slices.Sort(want)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("Verify(damaged closure) = %q, %v; want %q", got, err, want)
	}
	if err := n.RepairPath(ctx, out); err != nil {
		t.Fatalf("RepairPath(%s) = %v", out, err)
	}
	if err := n.RepairPath(ctx, src); err == nil {
		t.Errorf("RepairPath(%s) = nil; a source with no substituter cannot be repaired so", src)
	}
	if err := n.RepairBuild(ctx, s.ref, "test"); err != nil {
		t.Fatalf("RepairBuild = %v", err)
	}
	if got, err := n.Verify(ctx, closure); err != nil || len(got) != 0 {
		t.Errorf("Verify(repaired closure) = %q, %v; want none", got, err)
	}
}

func TestCacheDir(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("HOME", "/home/agent")
	tests := []struct {
		env  []string
		want string
	}{
		{nil, "/home/agent/.cache/nix"},
		{[]string{"XDG_CACHE_HOME=/var/cache/agent"}, "/var/cache/agent/nix"},
		{[]string{"HOME=/root"}, "/root/.cache/nix"},
	}
	for _, tt := range tests {
		n := &rebuild.Nix{Env: tt.env}
		if got := n.CacheDir(); got != tt.want {
			t.Errorf("Nix{Env: %q}.CacheDir() = %q; want %q", tt.env, got, tt.want)
		}
	}
}

// TestDeleteDamagedUnreferenced: a damaged path nothing refers to (a
// source evaluation copied) is deleted, so Nix copies it again; one that a
// valid path refers to stays.
func TestDeleteDamagedUnreferenced(t *testing.T) {
	n := newNix(t)
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "src.txt")
	os.WriteFile(src, []byte(fmt.Sprintf("unreferenced %d", time.Now().UnixNano())), 0o644)
	out, err := exec.Command("nix-store", "--add", src).Output()
	if err != nil {
		t.Fatal(err)
	}
	p := strings.TrimSpace(string(out))
	damage(t, p)
	if err := n.Delete(ctx, p); err != nil {
		t.Fatalf("Delete(%s) = %v", p, err)
	}
	if _, err := os.Lstat(p); err == nil {
		t.Errorf("%s still exists", p)
	}
	repo := nixtest.NewRepo(t, "main")
	m := fmt.Sprintf("referenced %d", time.Now().UnixNano())
	built := buildSystem(t, n, repo, nixtest.FlakeOptions{Marker: m, Kernel: "kernel " + m})
	kernel, _ := os.Readlink(filepath.Join(built, "kernel"))
	if err := n.Delete(ctx, kernel); err == nil {
		t.Errorf("Delete(%s) = nil; the system refers to it", kernel)
	}
}

// TestRegisteredSince lists what the store registered from a given second
// on, and not what it held before.
func TestRegisteredSince(t *testing.T) {
	n := newNix(t)
	add := func(what string) string {
		src := filepath.Join(t.TempDir(), "src.txt")
		os.WriteFile(src, []byte(fmt.Sprintf("%s %d", what, time.Now().UnixNano())), 0o644)
		out, err := exec.Command("nix-store", "--add", src).Output()
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out))
	}
	before := add("before")
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second))) // registration times are whole seconds
	since := time.Now()
	after := add("after")
	got, err := n.RegisteredSince(context.Background(), since)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(got, after) || slices.Contains(got, before) {
		t.Errorf("RegisteredSince = %d paths; want %s in them and %s not", len(got), after, before)
	}
}

// TestDeleteWithReferrers deletes a damaged derivation that an evaluation
// wrote together with the derivations built on it; a path that a system
// still refers to stays.
func TestDeleteWithReferrers(t *testing.T) {
	n := newNix(t)
	ctx := context.Background()
	repo := nixtest.NewRepo(t, "main")
	m := fmt.Sprintf("drv %d", time.Now().UnixNano())
	s := commitSystem(t, n, repo, nixtest.FlakeOptions{Marker: m, Kernel: "kernel " + m, Deps: 1})
	refs, err := exec.Command("nix-store", "--query", "--references", s.ev.DrvPath).Output()
	if err != nil {
		t.Fatal(err)
	}
	var input string
	for _, r := range strings.Fields(string(refs)) {
		if strings.HasSuffix(r, ".drv") {
			input = r
		}
	}
	if input == "" {
		t.Fatalf("%s has no input derivation: %s", s.ev.DrvPath, refs)
	}
	damage(t, input)
	if err := n.Delete(ctx, input); err == nil {
		t.Fatalf("Delete(%s) = nil; %s refers to it", input, s.ev.DrvPath)
	}
	if err := n.DeleteWithReferrers(ctx, input); err != nil {
		t.Fatalf("DeleteWithReferrers(%s) = %v", input, err)
	}
	for _, p := range []string{input, s.ev.DrvPath} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s still exists", p)
		}
	}
	built := buildSystem(t, n, repo, nixtest.FlakeOptions{Marker: m + " built", Kernel: "kernel " + m + " built"})
	kernel, _ := os.Readlink(filepath.Join(built, "kernel"))
	if err := n.DeleteWithReferrers(ctx, kernel); err == nil {
		t.Errorf("DeleteWithReferrers(%s) = nil; the built system refers to it and is rooted", kernel)
	}
	if _, err := os.Lstat(built); err != nil {
		t.Errorf("the built system is gone: %v", err)
	}
}
