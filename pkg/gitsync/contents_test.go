package gitsync

import (
	"context"
	"io/fs"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/avalanche-fleet/avalanche/pkg/gitsync/gittest"
	"github.com/google/go-cmp/cmp"
)

// setConfig sets a git config value in the bare repository, read by the
// git http-backend that serves it.
func setConfig(t *testing.T, bare, key, value string) {
	t.Helper()
	cmd := exec.Command("git", "config", key, value)
	cmd.Dir, cmd.Env = bare, gittest.Env(t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git config %s %s: %v: %s", key, value, err, out)
	}
}

// treeOf returns the tree hash of commit in the copy, read from the
// commit object alone.
func treeOf(t *testing.T, l *local, commit string) [20]byte {
	t.Helper()
	c, err := l.repo.CommitObject(mustHash(t, commit))
	if err != nil {
		t.Fatalf("reading commit %s: %v", commit, err)
	}
	return c.TreeHash
}

// A builder-mode host's copy keeps the commits of main and testing, the
// release branch whole, and no trees: signatures and ancestry are checked
// as before. A remote without uploadpack.allowFilter gets the whole
// history, said in Unfiltered.
func TestCommitsOnlyCopy(t *testing.T) {
	gittest.Require(t, "ssh-keygen")
	for _, allowFilter := range []bool{true, false} {
		t.Run(map[bool]string{true: "allowFilter", false: "no filter support"}[allowFilter], func(t *testing.T) {
			f, first := newFixture(t)
			gittest.GenerateHistory(t, f.bare, "main", 30, 2, 4000)
			f.work.Git(t, "pull", "-q", f.bare, "main")
			key, pub := gittest.NewSSHKey(t, t.TempDir(), "alice")
			signed := f.work.CommitSSHSigned(t, map[string]string{"flake.nix": "{ }\n"}, "signed", key)
			f.push(t)
			// Releases live on a branch of their own history.
			f.work.Git(t, "checkout", "-q", "--orphan", "releases")
			f.work.Git(t, "rm", "-rqf", ".")
			release := f.work.Commit(t, map[string]string{"release.json": "{}\n"}, "a release")
			f.push(t)
			if allowFilter {
				setConfig(t, f.bare, "uploadpack.allowFilter", "true")
			}
			srv := gittest.StartHTTPServer(t, f.bare, "")
			r := newRepo(t, Remote{URL: srv.URL}, "main", "testing/eagle", "releases")
			r.Contents, r.WholeBranches = CommitsOnly, []string{"releases"}

			res := mustFetch(t, r)
			if res.Unfiltered == allowFilter {
				t.Errorf("Fetch Unfiltered = %v; want %v", res.Unfiltered, !allowFilter)
			}
			wantHeads(t, res, map[string]string{"main": signed, "releases": release})
			l, err := openLocal(r.Dir)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if got := l.has(treeOf(t, l, signed)); got != !allowFilter {
				t.Errorf("main's tree in the copy = %v; want %v", got, !allowFilter)
			}
			if !l.has(treeOf(t, l, release)) {
				t.Errorf("the release branch's tree is missing")
			}
			if ok, err := r.IsAncestor(context.Background(), first, signed); !ok || err != nil {
				t.Errorf("IsAncestor(first, signed) = %v, %v; want true", ok, err)
			}
			s := Signers{AllowedSignersFile: writeTemp(t, "allowed", gittest.AllowedSigner("alice@fleet", pub)+"\n")}
			if who, err := r.VerifyCommit(context.Background(), signed, s); err != nil || who != "alice@fleet" {
				t.Errorf("VerifyCommit = %q, %v; want alice@fleet", who, err)
			}

			f.work.Checkout(t, "main")
			next := f.commit(t, "next")
			res = mustFetch(t, r)
			if !res.Changed || res.Recloned {
				t.Errorf("incremental Fetch = %+v; want Changed, not Recloned", res)
			}
			l.st.Reindex()
			if got := l.has(treeOf(t, l, next)); got != !allowFilter {
				t.Errorf("next's tree in the copy = %v; want %v", got, !allowFilter)
			}

			before := snapshot(t, r.Dir)
			srv.Reset()
			if res := mustFetch(t, r); res.Changed || res.Recloned {
				t.Errorf("unchanged Fetch = %+v; want nothing changed", res)
			}
			if diff := cmp.Diff(before, snapshot(t, r.Dir)); diff != "" {
				t.Errorf("unchanged Fetch wrote to disk (-before +after):\n%s", diff)
			}
			if n := srv.Count("POST"); n != 0 || srv.Count("GET") != 1 {
				t.Errorf("unchanged Fetch: requests %+v; want one ref advertisement", srv.Requests())
			}
		})
	}
}

// A copy made before the upgrade (everything) is made anew with commits
// only on the first fetch, and back again when the host starts evaluating.
func TestContentsChangeRemakesCopy(t *testing.T) {
	f, _ := newFixture(t)
	gittest.GenerateHistory(t, f.bare, "main", 20, 2, 4000)
	setConfig(t, f.bare, "uploadpack.allowFilter", "true")
	srv := gittest.StartHTTPServer(t, f.bare, "")
	r := newRepo(t, Remote{URL: srv.URL})
	mustFetch(t, r)
	full := duSize(t, r.Dir)

	r2 := &Repo{Dir: r.Dir, Remote: r.Remote, Branches: r.Branches, Contents: CommitsOnly}
	if res := mustFetch(t, r2); !res.Recloned {
		t.Errorf("first Fetch with commits only = %+v; want Recloned", res)
	}
	if small := duSize(t, r.Dir); small*4 > full {
		t.Errorf("commits-only copy %d bytes; want well under the full copy's %d", small, full)
	}
	if res := mustFetch(t, r2); res.Recloned || res.Changed {
		t.Errorf("second Fetch = %+v; want nothing changed", res)
	}
	r3 := &Repo{Dir: r.Dir, Remote: r.Remote, Branches: r.Branches}
	if res := mustFetch(t, r3); !res.Recloned {
		t.Errorf("Fetch with everything after commits only = %+v; want Recloned", res)
	}
	l, err := openLocal(r.Dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.check(r.Dir, r.Branches, nil); err != nil {
		t.Errorf("the remade full copy does not check: %v", err)
	}
}

// duSize sums the sizes of the files under dir.
func duSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		n += fi.Size()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
