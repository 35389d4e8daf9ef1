package gitsync

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/avalanche-fleet/avalanche/pkg/gitsync/gittest"
	"github.com/google/go-cmp/cmp"
)

// remotes returns one Remote per transport serving f's bare repository.
func remotes(t *testing.T, f *fixture) map[string]func() Remote {
	return map[string]func() Remote{
		"local": func() Remote { return Remote{URL: f.bare} },
		"file":  func() Remote { return Remote{URL: "file://" + f.bare} },
		"http":  func() Remote { return Remote{URL: gittest.NewHTTPServer(t, f.bare, "")} },
		"http-token": func() Remote {
			return Remote{URL: gittest.NewHTTPServer(t, f.bare, "s3cret"), TokenFile: tokenFile(t, "s3cret\n")}
		},
		"ssh": func() Remote {
			url, key, known := gittest.NewSSHServer(t, f.bare)
			return Remote{URL: url, SSHKeyFile: key, KnownHostsFile: known}
		},
	}
}

func TestFetchPicksUpNewCommit(t *testing.T) {
	for name := range remotes(t, nil) {
		t.Run(name, func(t *testing.T) {
			f, first := newFixture(t)
			r := newRepo(t, remotes(t, f)[name]())

			res := mustFetch(t, r)
			if !res.Changed || !res.Recloned {
				t.Errorf("first Fetch = %+v; want Changed and Recloned", res)
			}
			wantHeads(t, res, map[string]string{"main": first})

			second := f.commit(t, "second")
			res = mustFetch(t, r)
			if !res.Changed || res.Recloned {
				t.Errorf("second Fetch = %+v; want Changed, not Recloned", res)
			}
			wantHeads(t, res, map[string]string{"main": second})

			res = mustFetch(t, r)
			if res.Changed || res.Recloned {
				t.Errorf("third Fetch = %+v; want nothing changed", res)
			}
			wantHeads(t, res, map[string]string{"main": second})
		})
	}
}

func TestFetchUnchangedWritesNothing(t *testing.T) {
	f, first := newFixture(t)
	f.work.Checkout(t, "testing/eagle")
	testing := f.commit(t, "on testing")
	srv := gittest.StartHTTPServer(t, f.bare, "")
	r := newRepo(t, Remote{URL: srv.URL}, "main", "testing/eagle", "testing/absent")
	mustFetch(t, r)

	before := snapshot(t, r.Dir)
	srv.Reset()
	res := mustFetch(t, r)
	if res.Changed || res.Recloned {
		t.Errorf("Fetch = %+v; want nothing changed", res)
	}
	wantHeads(t, res, map[string]string{"main": first, "testing/eagle": testing})
	if diff := cmp.Diff(before, snapshot(t, r.Dir)); diff != "" {
		t.Errorf("Fetch of an unchanged remote wrote to disk (-before +after):\n%s", diff)
	}
	want := []gittest.Request{{Method: "GET", Path: "/repo.git/info/refs?service=git-upload-pack", Status: 200}}
	got := srv.Requests()
	if diff := cmp.Diff(want, got, cmpIgnoreBytes); diff != "" {
		t.Errorf("requests for an unchanged remote (-want +got):\n%s", diff)
	}
}

var cmpIgnoreBytes = cmp.Comparer(func(a, b gittest.Request) bool {
	return a.Method == b.Method && a.Path == b.Path && a.Status == b.Status
})

func TestFetchForcePushVisible(t *testing.T) {
	f, first := newFixture(t)
	deployed := f.commit(t, "deployed")
	r := newRepo(t, Remote{URL: gittest.NewHTTPServer(t, f.bare, "")})
	mustFetch(t, r)

	f.work.Git(t, "reset", "-q", "--hard", first)
	rewritten := f.commit(t, "rewritten history")
	res := mustFetch(t, r)
	wantHeads(t, res, map[string]string{"main": rewritten})

	ctx := context.Background()
	for _, tc := range []struct {
		ancestor, commit string
		want             bool
	}{
		{deployed, rewritten, false},
		{first, rewritten, true},
		{rewritten, rewritten, true},
		{rewritten, first, false},
		{first, deployed, true},
	} {
		got, err := r.IsAncestor(ctx, tc.ancestor, tc.commit)
		if err != nil || got != tc.want {
			t.Errorf("IsAncestor(%.7s, %.7s) = %v, %v; want %v", tc.ancestor, tc.commit, got, err, tc.want)
		}
	}
}

func TestTestingBranchOnTopOfMain(t *testing.T) {
	f, _ := newFixture(t)
	mainTip := f.commit(t, "main tip")
	f.work.Checkout(t, "testing/eagle")
	onTop := f.commit(t, "testing change")
	f.work.Checkout(t, "main")
	r := newRepo(t, Remote{URL: f.bare}, "main", "testing/eagle")
	res := mustFetch(t, r)
	wantHeads(t, res, map[string]string{"main": mainTip, "testing/eagle": onTop})
	if ok, err := r.IsAncestor(context.Background(), mainTip, onTop); !ok || err != nil {
		t.Errorf("IsAncestor(main, testing) = %v, %v; want true", ok, err)
	}

	// main moves on: testing no longer sits on top of it.
	newMain := f.commit(t, "main moves")
	res = mustFetch(t, r)
	wantHeads(t, res, map[string]string{"main": newMain, "testing/eagle": onTop})
	if ok, err := r.IsAncestor(context.Background(), newMain, onTop); ok || err != nil {
		t.Errorf("IsAncestor(new main, testing) = %v, %v; want false", ok, err)
	}

	// The testing branch is deleted on the remote: it disappears locally.
	f.work.Git(t, "push", "-q", f.bare, ":refs/heads/testing/eagle")
	res = mustFetch(t, r)
	if !res.Changed {
		t.Errorf("Fetch after branch deletion = %+v; want Changed", res)
	}
	wantHeads(t, res, map[string]string{"main": newMain})
}

func TestFetchMissingFirstBranch(t *testing.T) {
	f, _ := newFixture(t)
	r := newRepo(t, Remote{URL: f.bare}, "production", "main")
	_, err := r.Fetch(context.Background())
	if !errors.Is(err, ErrNotFound) || IsTransient(err) {
		t.Errorf("Fetch(missing branch) = %v; want ErrNotFound, not transient", err)
	}
}

func TestReachable(t *testing.T) {
	bare := gittest.NewBare(t)
	w := gittest.NewRepo(t)
	w.Commit(t, map[string]string{"a": "1"}, "one")
	w.Push(t, bare, "HEAD:refs/heads/main")
	srv := gittest.StartHTTPServer(t, bare, "")
	r := &Repo{Dir: filepath.Join(t.TempDir(), "repo.git"), Remote: Remote{URL: srv.URL}, Branches: []string{"main"}}
	if err := r.Reachable(context.Background()); err != nil {
		t.Errorf("Reachable() = %v; want nil", err)
	}
	if _, err := os.Stat(r.Dir); !os.IsNotExist(err) {
		t.Errorf("Reachable wrote %s", r.Dir)
	}
	r.Remote.URL = "http://" + gittest.ClosedPort(t) + "/repo.git"
	if err := r.Reachable(context.Background()); !errors.Is(err, ErrUnreachable) {
		t.Errorf("Reachable(closed port) = %v; want ErrUnreachable", err)
	}
}
