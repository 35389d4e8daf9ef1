package gitsync

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/avalanche-fleet/avalanche/pkg/gitsync/gittest"
	"github.com/google/go-cmp/cmp"
)

// nixEval evaluates attribute x of the flake at rev in dir with the real
// nix, as the agent's evaluation reads a commit.
func nixEval(t *testing.T, dir, rev string) (string, error) {
	t.Helper()
	gittest.Require(t, "nix")
	cmd := exec.Command("nix", "--extra-experimental-features", "nix-command flakes", "eval", "--raw",
		"git+file://"+dir+"?ref=main&rev="+rev+"#x", "--option", "substituters", "")
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// A copy with TipTrees keeps the commits and each fetched head's whole
// tree: Nix evaluates the head through EvalDir, reading the copy in place;
// an older commit's tree is not there; the bare copy itself cannot be
// cloned by Nix (it would need every object). A server without filters
// gives everything, said in Unfiltered.
func TestTipTreesCopy(t *testing.T) {
	for _, allowFilter := range []bool{true, false} {
		t.Run(map[bool]string{true: "allowFilter", false: "no filter support"}[allowFilter], func(t *testing.T) {
			testTipTrees(t, allowFilter)
		})
	}
}

func testTipTrees(t *testing.T, allowFilter bool) {
	f, _ := newFixture(t)
	flake := "{ outputs = { self }: { x = builtins.readFile ./data.txt; }; }\n"
	f.work.Commit(t, map[string]string{"flake.nix": flake, "data.txt": "one\n"}, "flake")
	f.push(t)
	gittest.GenerateHistory(t, f.bare, "main", 30, 2, 4000)
	f.work.Git(t, "pull", "-q", f.bare, "main")
	middle := f.work.Commit(t, map[string]string{"data.txt": "two\n"}, "two")
	tip := f.work.Commit(t, map[string]string{"data.txt": "three\n"}, "three")
	f.push(t)
	if allowFilter {
		setConfig(t, f.bare, "uploadpack.allowFilter", "true")
	}
	srv := gittest.StartHTTPServer(t, f.bare, "")
	r := newRepo(t, Remote{URL: srv.URL})
	r.Contents = TipTrees
	if res := mustFetch(t, r); res.Unfiltered == allowFilter {
		t.Errorf("Fetch Unfiltered = %v; want %v", res.Unfiltered, !allowFilter)
	}

	ctx := context.Background()
	eval, err := r.EvalDir(ctx, tip)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := nixEval(t, eval, tip); err != nil || out != "three\n" {
		t.Errorf("nix eval of the head through EvalDir = %q, %v; want three", out, err)
	}
	if out, err := nixEval(t, r.Dir, tip); allowFilter && err == nil {
		t.Errorf("nix eval of the bare copy = %q; want an error (Nix clones it and needs every object)", out)
	}
	l, err := openLocal(r.Dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if ok, err := l.treeComplete(mustHash(t, middle)); ok == allowFilter || err != nil {
		t.Errorf("treeComplete(middle) = %v, %v; want %v: only heads' trees are kept", ok, err, !allowFilter)
	}
	l.Close()
	// A commit that is no head (the deployed one after a re-clone) gets
	// its tree when it is evaluated: over HTTP any reachable commit may be
	// asked for.
	srv.Reset()
	if _, err := r.EvalDir(ctx, middle); err != nil {
		t.Fatalf("EvalDir(middle) = %v", err)
	}
	if out, err := nixEval(t, eval, middle); err != nil || out != "two\n" {
		t.Errorf("nix eval of a commit that was never a head = %q, %v; want two", out, err)
	}
	if n := len(srv.Requests()); allowFilter && n == 0 || !allowFilter && n != 0 {
		t.Errorf("EvalDir(middle) sent %d requests; want some only when the tree was missing", n)
	}
	if _, err := r.EvalDir(ctx, strings.Repeat("ab", 20)); !errors.Is(err, ErrUnknownCommit) {
		t.Errorf("EvalDir(unknown commit) = %v; want ErrUnknownCommit", err)
	}

	next := f.work.Commit(t, map[string]string{"data.txt": "four\n"}, "four")
	f.push(t)
	srv.Reset()
	if res := mustFetch(t, r); !res.Changed || res.Recloned {
		t.Errorf("incremental Fetch = %+v; want Changed, not Recloned", res)
	}
	var sent int64
	for _, q := range srv.Requests() {
		sent += q.Bytes
	}
	if sent > 64<<10 {
		t.Errorf("incremental fetch of one small change took %d bytes; want only what changed", sent)
	}
	if out, err := nixEval(t, eval, next); err != nil || !strings.HasPrefix(out, "four") {
		t.Errorf("nix eval of the new head = %q, %v; want four", out, err)
	}
	if ok, err := r.IsAncestor(context.Background(), middle, next); !ok || err != nil {
		t.Errorf("IsAncestor(middle, next) = %v, %v; want true", ok, err)
	}
	// The unchanged poll stays one ref advertisement with nothing written,
	// evaluations through EvalDir included.
	srv.Reset()
	before := snapshot(t, r.Dir)
	if res := mustFetch(t, r); res.Changed {
		t.Errorf("unchanged Fetch = %+v; want nothing changed", res)
	}
	if reqs := srv.Requests(); len(reqs) != 1 {
		t.Errorf("unchanged Fetch made %d requests %+v; want the ref advertisement alone", len(reqs), reqs)
	}
	if diff := cmp.Diff(before, snapshot(t, r.Dir)); diff != "" {
		t.Errorf("unchanged Fetch wrote (-before +after):\n%s", diff)
	}
}
