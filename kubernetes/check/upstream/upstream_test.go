package upstream

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var gitSum = regexp.MustCompile(`^git:[0-9a-f]{40}$`)

// TestVendoredFiles checks the real vendored files against lock.json.
func TestVendoredFiles(t *testing.T) {
	var src Sources
	var lock Lock
	if err := ReadJSON("sources.json", &src); err != nil {
		t.Fatal(err)
	}
	if err := ReadJSON("lock.json", &lock); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range lock.Modules {
		n += len(m.Files)
		if !strings.HasPrefix(m.Sum, "h1:") && !gitSum.MatchString(m.Sum) {
			t.Errorf("%s@%s: sum %q is neither a go.sum hash nor a git commit", m.Module, m.Version, m.Sum)
		}
	}
	if n < 100 {
		t.Errorf("lock.json lists %d files; want every vendored file (>= 100)", n)
	}
	for _, err := range Verify("../..", src, lock) {
		t.Error(err)
	}
}

// TestVerifyFindsChanges edits, adds and removes vendored files in a copy
// and expects Verify to name each.
func TestVerifyFindsChanges(t *testing.T) {
	tree := t.TempDir()
	write := func(rel, s string) {
		p := filepath.Join(tree, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("charts/x/Chart.yaml", "name: x\n")
	write("charts/x/values.yaml", "a: 1\n")
	sum, err := FileSum(filepath.Join(tree, "charts/x/Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	src := Sources{Sources: []Source{{Module: "m", Version: "v1.0.0", Copy: []Copy{{From: "x", To: "charts/x"}}}}}
	lock := Lock{Modules: []Locked{{Module: "m", Version: "v1.0.0", Sum: "h1:x", Files: map[string]string{
		"charts/x/Chart.yaml": sum, "charts/x/gone.yaml": sum,
	}}}}
	write("charts/x/Chart.yaml", "name: y\n") // edited after locking
	got := Verify(tree, src, lock)
	want := []string{
		"vendored file charts/x/values.yaml: not in lock.json (added by hand?)",
		"vendored file charts/x/Chart.yaml: sha256",
		"vendored file charts/x/gone.yaml:",
	}
	if len(got) != len(want) {
		t.Fatalf("Verify() = %v; want %d errors", got, len(want))
	}
	for i, w := range want {
		if !strings.Contains(got[i].Error(), w) {
			t.Errorf("Verify()[%d] = %v; want it to contain %q", i, got[i], w)
		}
	}
	src.Sources[0].Commit = "0123456789012345678901234567890123456789"
	if got := Verify(tree, src, lock); len(got) == 0 || !strings.Contains(got[0].Error(), "sources.json commit 0123") {
		t.Errorf("Verify() with a git commit the lock does not have = %v; want it to ask for a refetch", got)
	}
	src.Sources[0].Commit = ""
	src.Sources[0].Version = "v2.0.0"
	if got := Verify(tree, src, lock); len(got) == 0 || !strings.Contains(got[0].Error(), "m@v2.0.0: not in lock.json") {
		t.Errorf("Verify() with a new version = %v; want it to ask for a refetch", got)
	}
}
