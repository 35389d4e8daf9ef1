package check

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// scratch holds the JSON schemas of every Check in the tests (one
// directory, so the compiled validator is shared).
var scratch string

func TestMain(m *testing.M) {
	var err error
	scratch, err = os.MkdirTemp("", "k8s-check-schemas-")
	if err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(scratch)
	os.Exit(code)
}

// copyTree copies what Check reads (kubernetes/ and the NixOS files it
// evaluates) into a temporary repository; the vendored charts are linked,
// not copied.
func copyTree(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	for _, p := range []string{"kubernetes", "nixos/hosts/mysecrets", "nixos/lib/inventory.nix", "nixos/profiles/role-k3s-server.nix"} {
		if err := copyPath(filepath.Join(repoRoot, p), filepath.Join(dst, p)); err != nil {
			t.Fatalf("copying %s: %v", p, err)
		}
	}
	up, err := filepath.Abs("upstream")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(up, filepath.Join(dst, "kubernetes/check/upstream")); err != nil {
		t.Fatal(err)
	}
	return dst
}

func copyPath(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			if err := os.MkdirAll(filepath.Join(dst, rel), 0o755); err != nil {
				return err
			}
			if rel == "check" && filepath.Base(src) == "kubernetes" {
				return filepath.SkipDir // only upstream/ is needed: linked
			}
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dst, rel)), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
}

// edit replaces old by new in a file of the copied repository (the
// mutation must apply), or writes new as the whole file when old is empty.
func edit(t *testing.T, root string, e change) {
	t.Helper()
	file, old, new := e.file, e.old, e.new
	p := filepath.Join(root, file)
	if old == "" {
		if err := os.WriteFile(p, []byte(new), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("mutation: %s does not contain %q", file, old)
	}
	if err := os.WriteFile(p, []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// change is one edit of a file, relative to the repository root.
type change struct{ file, old, new string }

type mutation struct {
	name    string
	changes []change
	want    string // a substring of one of Check's errors
}

// runMutations breaks a copy of the tree per mutation and expects Check to
// say what broke.
func runMutations(t *testing.T, ms []mutation) {
	t.Helper()
	for _, m := range ms {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			root := copyTree(t)
			for _, c := range m.changes {
				edit(t, root, c)
			}
			r := Check(context.Background(), root, scratch)
			for _, err := range r.Errors {
				if strings.Contains(err.Error(), m.want) {
					t.Logf("Check() says: %v", err)
					return
				}
			}
			t.Errorf("after %s, Check() errors = %v; want one containing %q", m.name, r.Errors, m.want)
		})
	}
}
