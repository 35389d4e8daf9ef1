package gitsync

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/avalanche-fleet/avalanche/pkg/gitsync/gittest"
)

// packFiles returns the pack files of the bare repository dir.
func packFiles(t *testing.T, dir, ext string) []string {
	t.Helper()
	packs, err := filepath.Glob(filepath.Join(dir, "objects", "pack", "pack-*."+ext))
	if err != nil || len(packs) == 0 {
		t.Fatalf("no %s files in %s: %v", ext, dir, err)
	}
	return packs
}

// explode turns the packs of dir into loose objects, as git does for
// small fetches, and returns the path of the loose object for hash.
func explode(t *testing.T, dir, hash string) string {
	t.Helper()
	for _, pack := range packFiles(t, dir, "pack") {
		aside := filepath.Join(t.TempDir(), "aside.pack")
		if err := os.Rename(pack, aside); err != nil {
			t.Fatal(err)
		}
		os.Remove(pack[:len(pack)-len(".pack")] + ".idx")
		f, err := os.Open(aside)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("git", "unpack-objects", "-q")
		cmd.Dir, cmd.Stdin, cmd.Env = dir, f, gittest.Env(t.TempDir())
		out, err := cmd.CombinedOutput()
		f.Close()
		if err != nil {
			t.Fatalf("git unpack-objects: %v: %s", err, out)
		}
	}
	return looseObject(dir, hash)
}

// looseObject is the path of the loose object hash in the repository dir.
func looseObject(dir, hash string) string {
	return filepath.Join(dir, "objects", hash[:2], hash[2:])
}

// corruption damages the local copy in dir. prepare, when set, runs
// first, before the copy is checked (it turns packs into loose objects).
type corruption struct {
	name    string
	prepare func(t *testing.T, dir string)
	corrupt func(t *testing.T, dir string)
}

// corruptions are the ways a copy gets damaged that Fetch must repair by
// cloning again; tip is the remote main's commit.
func corruptions(tip string) []corruption {
	return []corruption{
		{"missing directory", nil, func(t *testing.T, dir string) { os.RemoveAll(dir) }},
		{"empty directory", nil, func(t *testing.T, dir string) {
			os.RemoveAll(dir)
			os.Mkdir(dir, 0o755)
		}},
		{"garbage HEAD", nil, func(t *testing.T, dir string) { writeFile(t, filepath.Join(dir, "HEAD"), "\x00garbage\n") }},
		{"garbage branch ref", nil, func(t *testing.T, dir string) { writeFile(t, filepath.Join(dir, "refs", "heads", "main"), "zzz\n") }},
		{"garbage config", nil, func(t *testing.T, dir string) { writeFile(t, filepath.Join(dir, "config"), "[core\n\x00") }},
		{"deleted pack", nil, func(t *testing.T, dir string) { os.Remove(packFiles(t, dir, "pack")[0]) }},
		{"deleted index", nil, func(t *testing.T, dir string) { os.Remove(packFiles(t, dir, "idx")[0]) }},
		{"truncated pack", nil, func(t *testing.T, dir string) {
			p := packFiles(t, dir, "pack")[0]
			fi, _ := os.Stat(p)
			if err := os.Truncate(p, fi.Size()/2); err != nil {
				t.Fatal(err)
			}
		}},
		{"deleted loose commit object", func(t *testing.T, dir string) { explode(t, dir, tip) }, func(t *testing.T, dir string) {
			if err := os.Remove(looseObject(dir, tip)); err != nil {
				t.Fatal(err)
			}
		}},
	}
}

// TestFetchReclonesCorruptRepo damages the copy right after a Fetch, and
// after a poll that checked it and trusts it (its next unchanged poll only
// stats files): either way the next Fetch must see it and clone anew.
func TestFetchReclonesCorruptRepo(t *testing.T) {
	trustSoon(t)
	f, _ := newFixture(t)
	gittest.GenerateHistory(t, f.bare, "main", 20, 5, 2000)
	tip := f.work.Git(t, "--git-dir", f.bare, "rev-parse", "main")
	for _, tc := range corruptions(tip) {
		for _, trusted := range []bool{false, true} {
			name := tc.name
			if trusted {
				name += " of a trusted copy"
			}
			t.Run(name, func(t *testing.T) {
				r := newRepo(t, Remote{URL: f.bare})
				mustFetch(t, r)
				if tc.prepare != nil {
					tc.prepare(t, r.Dir)
				}
				if trusted {
					settle(t, r)
				}
				tc.corrupt(t, r.Dir)

				res := mustFetch(t, r)
				if !res.Recloned || !res.Changed {
					t.Errorf("Fetch after corruption = %+v; want Recloned and Changed", res)
				}
				wantHeads(t, res, map[string]string{"main": tip})
				if res := mustFetch(t, r); res.Changed || res.Recloned {
					t.Errorf("Fetch after re-clone = %+v; want nothing changed", res)
				}
				assertNoTempDirs(t, r.Dir)
			})
		}
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// assertNoTempDirs fails when re-clone directories are left next to dir.
func assertNoTempDirs(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != filepath.Base(dir) {
			t.Errorf("unexpected %s left next to %s", e.Name(), dir)
		}
	}
	tmp, _ := filepath.Glob(filepath.Join(dir, "objects", "pack", "tmp_*"))
	if len(tmp) > 0 {
		t.Errorf("temporary pack files left in %s: %v", dir, tmp)
	}
}
