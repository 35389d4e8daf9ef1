package gitsync

import (
	"context"
	"io/fs"
	"path/filepath"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/pkg/gitsync/gittest"
	"github.com/google/go-cmp/cmp"
)

// fixture is a work repository pushed to a bare "remote" repository.
type fixture struct {
	work *gittest.WorkRepo
	bare string
}

// newFixture creates a remote with one commit on main and returns it with
// that commit's hash.
func newFixture(t *testing.T) (*fixture, string) {
	t.Helper()
	f := &fixture{work: gittest.NewRepo(t), bare: gittest.NewBare(t)}
	h := f.commit(t, "first")
	return f, h
}

// commit commits a change on the current branch and pushes it.
func (f *fixture) commit(t *testing.T, msg string) string {
	t.Helper()
	h := f.work.Commit(t, map[string]string{"file.txt": msg + "\n"}, msg)
	f.push(t)
	return h
}

func (f *fixture) push(t *testing.T) {
	t.Helper()
	branch := f.work.Git(t, "rev-parse", "--abbrev-ref", "HEAD")
	f.work.Push(t, f.bare, "HEAD:refs/heads/"+branch)
}

// newRepo returns a Repo with a fresh local directory.
func newRepo(t *testing.T, remote Remote, branches ...string) *Repo {
	t.Helper()
	if len(branches) == 0 {
		branches = []string{"main"}
	}
	return &Repo{
		Dir:      filepath.Join(t.TempDir(), "state", "repo.git"),
		Remote:   remote,
		Branches: branches,
		Timeout:  30 * time.Second,
	}
}

func mustFetch(t *testing.T, r *Repo) FetchResult {
	t.Helper()
	res, err := r.Fetch(context.Background())
	if err != nil {
		t.Fatalf("Fetch(%s) = %v", r.Remote.URL, err)
	}
	return res
}

func wantHeads(t *testing.T, got FetchResult, want map[string]string) {
	t.Helper()
	if diff := cmp.Diff(want, got.Heads); diff != "" {
		t.Errorf("Fetch heads mismatch (-want +got):\n%s", diff)
	}
}

// fileState is what snapshot records of each path.
type fileState struct {
	Size  int64
	Mode  fs.FileMode
	MTime time.Time
}

// snapshot records every path under dir and its parent with size, mode
// and modification time, to prove that nothing was written.
func snapshot(t *testing.T, dir string) map[string]fileState {
	t.Helper()
	out := map[string]fileState{}
	root := filepath.Dir(dir)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out[rel] = fileState{Size: fi.Size(), Mode: fi.Mode(), MTime: fi.ModTime()}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
