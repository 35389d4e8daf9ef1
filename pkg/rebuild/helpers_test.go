package rebuild_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/avalanche-fleet/avalanche/pkg/rebuild"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
)

// newNix returns a Nix for tests, or skips when Nix cannot run here.
func newNix(t *testing.T) *rebuild.Nix {
	t.Helper()
	nixtest.Require(t)
	return &rebuild.Nix{ExtraArgs: nixtest.Args(), Env: nixtest.Env(t)}
}

// system is a fake NixOS system committed to a bare repository.
type system struct {
	ref string
	ev  rebuild.Evaluation
}

// commitSystem commits a flake for opts and evaluates it.
func commitSystem(t *testing.T, n *rebuild.Nix, repo *nixtest.Repo, opts nixtest.FlakeOptions) system {
	t.Helper()
	sha := repo.WriteFlake(t, opts, "system "+opts.Marker)
	ref := rebuild.FlakeRef(repo.Bare, repo.Branch, sha)
	ev, err := n.Evaluate(context.Background(), ref, name(opts))
	if err != nil {
		t.Fatalf("Evaluate(%q) = %v", ref, err)
	}
	return system{ref: ref, ev: ev}
}

// buildSystem commits, evaluates and builds a fake system; it returns the output path.
func buildSystem(t *testing.T, n *rebuild.Nix, repo *nixtest.Repo, opts nixtest.FlakeOptions) string {
	t.Helper()
	s := commitSystem(t, n, repo, opts)
	out, err := n.Build(context.Background(), s.ev, filepath.Join(t.TempDir(), "root"))
	if err != nil {
		t.Fatalf("Build(%v) = %v", s.ev, err)
	}
	return out
}

func name(opts nixtest.FlakeOptions) string {
	if opts.Name == "" {
		return "test"
	}
	return opts.Name
}

// exists reports whether p exists, without following a final symlink.
func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
