package secrets

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func newStore(t *testing.T) *Store {
	t.Helper()
	dir := t.TempDir()
	return &Store{Link: filepath.Join(dir, "secrets"), Root: filepath.Join(dir, "secrets.d"), Keep: 2}
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("chown needs root (.ci/test runs as root)")
	}
}

// fileInfo is what a test expects of one installed file.
type fileInfo struct {
	Data     string
	Mode     fs.FileMode
	UID, GID uint32
}

func readInstalled(t *testing.T, path string) fileInfo {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return fileInfo{Data: string(data), Mode: fi.Mode(), UID: st.Uid, GID: st.Gid}
}

func TestInstall(t *testing.T) {
	requireRoot(t)
	s := newStore(t)
	m := &Manifest{Version: 1, Secrets: []Secret{
		{Name: "root-default", SopsFile: "/nix/store/a.yaml"},
		{Name: "nobody", SopsFile: "/nix/store/a.yaml", Owner: "nobody", Mode: "0440"},
		{Name: "numeric", SopsFile: "/nix/store/a.yaml", Owner: "65534", Group: "nogroup", Mode: "0644"},
		{Name: "restic/password", SopsFile: "/nix/store/a.yaml", Owner: "0", Group: "65534", Mode: "0040"},
	}}
	values := map[string][]byte{"root-default": []byte("r"), "nobody": []byte("n\x00\n"), "numeric": []byte(""), "restic/password": []byte("pw")}
	gen, changed, err := s.Install(context.Background(), m, values)
	if err != nil {
		t.Fatalf("Install() = %v", err)
	}
	want := map[string]fileInfo{
		"root-default":    {"r", 0o400, 0, 0},
		"nobody":          {"n\x00\n", 0o440, 65534, 65534},
		"numeric":         {"", 0o644, 65534, 65534},
		"restic/password": {"pw", 0o040, 0, 65534},
	}
	for name, w := range want {
		if got := readInstalled(t, filepath.Join(s.Link, name)); got != w {
			t.Errorf("installed %q = %+v; want %+v", name, got, w)
		}
	}
	for _, d := range []string{gen.Path, filepath.Join(gen.Path, "restic")} {
		if fi, _ := os.Stat(d); fi.Mode().Perm() != 0o751 {
			t.Errorf("mode of %s = %v; want 0751", d, fi.Mode().Perm())
		}
	}
	if diff := cmp.Diff([]string{"root-default", "nobody", "numeric", "restic/password"}, changed); diff != "" {
		t.Errorf("Install() changed mismatch (-want +got):\n%s", diff)
	}
	if cur, err := s.Current(); err != nil || cur != gen {
		t.Errorf("Current() = %+v, %v; want %+v", cur, err, gen)
	}
}

func TestInstallChangedAndRollback(t *testing.T) {
	s := newStore(t)
	m := &Manifest{Version: 1, Secrets: []Secret{
		{Name: "a", SopsFile: "/nix/store/a.yaml"},
		{Name: "b", SopsFile: "/nix/store/a.yaml"},
		{Name: "c", SopsFile: "/nix/store/a.yaml"},
	}}
	ctx := context.Background()
	gen1, _, err := s.Install(ctx, m, map[string][]byte{"a": []byte("1"), "b": []byte("1"), "c": []byte("1")})
	if err != nil {
		t.Fatalf("Install(1) = %v", err)
	}
	m2 := *m
	m2.Secrets = append([]Secret(nil), m.Secrets...)
	m2.Secrets[2].Mode = "0440" // same bytes, new mode: changed
	gen2, changed, err := s.Install(ctx, &m2, map[string][]byte{"a": []byte("1"), "b": []byte("2"), "c": []byte("1")})
	if err != nil {
		t.Fatalf("Install(2) = %v", err)
	}
	if diff := cmp.Diff([]string{"b", "c"}, changed); diff != "" {
		t.Errorf("Install(2) changed mismatch (-want +got):\n%s", diff)
	}
	if gen2.ID == gen1.ID {
		t.Fatalf("Install(2) reused generation %s", gen1.ID)
	}
	if err := s.Activate(gen1); err != nil {
		t.Fatalf("Activate(%+v) = %v", gen1, err)
	}
	if got, _ := os.ReadFile(filepath.Join(s.Link, "b")); string(got) != "1" {
		t.Errorf("after rollback b = %q; want %q", got, "1")
	}
	if cur, _ := s.Current(); cur != gen1 {
		t.Errorf("Current() after rollback = %+v; want %+v", cur, gen1)
	}
	if err := s.Activate(Generation{ID: "..", Path: filepath.Dir(s.Root)}); err == nil {
		t.Error("Activate(outside root) = nil; want an error")
	}
}

func TestInstallRejects(t *testing.T) {
	s := newStore(t)
	tests := []struct {
		name   string
		m      *Manifest
		values map[string][]byte
	}{
		{"traversal", &Manifest{Version: 1, Secrets: []Secret{{Name: "../escape", SopsFile: "/nix/store/a"}}}, map[string][]byte{"../escape": []byte("x")}},
		{"missing-value", &Manifest{Version: 1, Secrets: []Secret{{Name: "a", SopsFile: "/nix/store/a"}}}, map[string][]byte{}},
		{"negative-owner", &Manifest{Version: 1, Secrets: []Secret{{Name: "a", SopsFile: "/nix/store/a", Owner: "-1"}}}, map[string][]byte{"a": nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := s.Install(context.Background(), tt.m, tt.values); err == nil {
				t.Errorf("Install(%s) = nil; want an error", tt.name)
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(s.Root), "escape")); err == nil {
				t.Errorf("Install(%s) wrote outside the root", tt.name)
			}
			if _, err := os.Lstat(s.Link); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Install(%s) created the link: %v", tt.name, err)
			}
		})
	}
}

// TestInstallDiskFull fills a tiny tmpfs: the old generation must survive.
func TestInstallDiskFull(t *testing.T) {
	s := newStore(t)
	if err := os.MkdirAll(s.Root, 0o751); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", s.Root, "tmpfs", 0, "size=64k"); err != nil {
		t.Fatalf("mounting a tmpfs (the secrets tests run as root, as .ci/test does): %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(s.Root, syscall.MNT_DETACH) })
	m := &Manifest{Version: 1, Secrets: []Secret{{Name: "a", SopsFile: "/nix/store/a"}, {Name: "big", SopsFile: "/nix/store/a"}}}
	gen1, _, err := s.Install(context.Background(), m, map[string][]byte{"a": []byte("old"), "big": []byte("small")})
	if err != nil {
		t.Fatalf("Install(small) = %v", err)
	}
	big := bytes.Repeat([]byte("x"), 128<<10)
	_, _, err = s.Install(context.Background(), m, map[string][]byte{"a": []byte("new"), "big": big})
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Install(big) = %v; want ENOSPC", err)
	}
	if cur, err := s.Current(); err != nil || cur != gen1 {
		t.Errorf("Current() = %+v, %v; want %+v", cur, err, gen1)
	}
	if got, _ := os.ReadFile(filepath.Join(s.Link, "a")); string(got) != "old" {
		t.Errorf("after failed install a = %q; want old", got)
	}
	if got := dirNames(t, s.Root); !cmp.Equal(got, []string{gen1.ID}) {
		t.Errorf("root holds %q after failed install; want only %q", got, gen1.ID)
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

func TestPrune(t *testing.T) {
	s := newStore(t)
	s.Keep = 2
	m := &Manifest{Version: 1, Secrets: []Secret{{Name: "a", SopsFile: "/nix/store/a"}}}
	var gens []Generation
	for i := 0; i < 5; i++ {
		g, _, err := s.Install(context.Background(), m, map[string][]byte{"a": {byte('0' + i)}})
		if err != nil {
			t.Fatal(err)
		}
		gens = append(gens, g)
	}
	if err := s.Activate(gens[0]); err != nil { // rolled back to the oldest
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(s.Root, tmpPrefix+"9"), 0o751) // left by a crash
	if err := s.Prune(); err != nil {
		t.Fatalf("Prune() = %v", err)
	}
	want := []string{gens[0].ID, gens[3].ID, gens[4].ID}
	sort.Strings(want)
	if diff := cmp.Diff(want, dirNames(t, s.Root)); diff != "" {
		t.Errorf("after Prune() (-want +got):\n%s", diff)
	}
}

func TestCurrentWithoutLink(t *testing.T) {
	s := newStore(t)
	if _, err := s.Current(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Current() = %v; want fs.ErrNotExist", err)
	}
}

// A crash inside Install leaves its temporary directory; the next Install
// must neither trip over it nor keep it.
func TestInstallAfterCrashLeftovers(t *testing.T) {
	s := newStore(t)
	m := &Manifest{Version: 1, Secrets: []Secret{{Name: "a", SopsFile: "/nix/store/a"}}}
	g1, _, err := s.Install(context.Background(), m, map[string][]byte{"a": []byte("1")})
	if err != nil {
		t.Fatal(err)
	}
	// What today's crash leaves: the temporary directory the next
	// generation would use, and a temporary link.
	next, _ := s.nextID()
	for _, d := range []string{filepath.Join(s.Root, tmpPrefix+next), filepath.Join(s.Root, tmpPrefix+next+"-x1")} {
		if err := os.MkdirAll(d, 0o751); err != nil {
			t.Fatal(err)
		}
	}
	os.Symlink(g1.Path, s.Link+tmpPrefix+next)
	g2, _, err := s.Install(context.Background(), m, map[string][]byte{"a": []byte("2")})
	if err != nil {
		t.Fatalf("Install() after a crash = %v; want the leftovers ignored", err)
	}
	if err := s.Clean(); err != nil {
		t.Fatalf("Clean() = %v", err)
	}
	if got, want := dirNames(t, s.Root), []string{g1.ID, g2.ID}; !cmp.Equal(got, want) {
		t.Errorf("root after Clean() = %q; want %q", got, want)
	}
	if l, _ := filepath.Glob(s.Link + tmpPrefix + "*"); len(l) != 0 {
		t.Errorf("temporary links left after Clean(): %q", l)
	}
}

// Generations of different boots never share an ID, even when the RAM
// file system started empty and numbering started over.
func TestGenerationIDsSurviveReboot(t *testing.T) {
	s := newStore(t)
	s.Boot = "11111111-aaaa"
	m := &Manifest{Version: 1, Secrets: []Secret{{Name: "a", SopsFile: "/nix/store/a"}}}
	before, _, err := s.Install(context.Background(), m, map[string][]byte{"a": []byte("old")})
	if err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(s.Root) // the reboot empties the RAM file system
	os.Remove(s.Link)
	s.Boot = "22222222-bbbb"
	after, _, err := s.Install(context.Background(), m, map[string][]byte{"a": []byte("new")})
	if err != nil {
		t.Fatal(err)
	}
	if before.ID == after.ID {
		t.Fatalf("generation IDs before and after a reboot are both %q", after.ID)
	}
	if err := s.Activate(before); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Activate(%s of the earlier boot) = %v; want fs.ErrNotExist", before.ID, err)
	}
}

// The directory holding the link is the host's; its absence is no reason
// to fail an install.
func TestInstallCreatesLinkParent(t *testing.T) {
	s := newStore(t)
	s.Link = filepath.Join(filepath.Dir(s.Link), "missing", "parent", "secrets")
	m := &Manifest{Version: 1, Secrets: []Secret{{Name: "a", SopsFile: "/nix/store/a"}}}
	if _, _, err := s.Install(context.Background(), m, map[string][]byte{"a": []byte("1")}); err != nil {
		t.Fatalf("Install() with a missing link parent = %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(s.Link, "a")); err != nil || string(b) != "1" {
		t.Errorf("secret through the link = %q, %v; want \"1\"", b, err)
	}
}
