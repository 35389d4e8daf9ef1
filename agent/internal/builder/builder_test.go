package builder

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/pkg/gitsync"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
	"github.com/avalanche-fleet/avalanche/pkg/release"
)

// TestBuilderToHost follows one commit from git push to a host running a
// system it never evaluated: the builder evaluates and builds the fleet,
// fills the cache and publishes the release; the host, whose store lacks
// every path of its system, finds the release and substitutes it, running
// no evaluation and no build.
func TestBuilderToHost(t *testing.T) {
	w := newWorld(t)
	c := w.commit(t, w.hosts("1", "1"), "fleet")
	found := w.build(t, c)
	if found.Commit != c || found.Builder != "cardinal" || len(found.Hosts) != 3 {
		t.Fatalf("Release(%s) = %+v; want a release of %s by cardinal with 3 hosts", c, found.Release, c)
	}
	if e := found.Hosts["broken"].Error; !strings.Contains(e, "this host's configuration does not evaluate") {
		t.Errorf("broken host's entry error = %q; want its evaluation error", e)
	}
	p := w.builder.Progress()
	if p.Release != found.ID || p.Hosts["alpha"].Phase != PhaseDone || p.Hosts["broken"].Phase != PhaseFailed {
		t.Errorf("Progress = %+v; want release %s, alpha done, broken failed", p, found.ID)
	}
	w.evict(t, found.Release)

	alpha := w.agent(t, "alpha")
	want := found.Hosts["alpha"].OutPath
	if valid(want) {
		t.Fatalf("%s is in the store before the host substitutes it", want)
	}
	out, err := alpha.deploy(t, c)
	if err != nil || out != want || !valid(out) {
		t.Fatalf("host deploy of %s = %q, %v; want %s substituted", c, out, err, want)
	}
	calls := alpha.rec.Calls(t)
	if ev := nixtest.Evaluations(calls); len(ev) != 0 {
		t.Errorf("the host ran evaluations or builds: %q", ev)
	}
	t.Logf("the host's nix commands: %q", calls)

	_, err = w.agent(t, "broken").deploy(t, c)
	if !errors.Is(err, release.ErrFailed) || !IsCommitFault(err) {
		t.Errorf("deploy on the broken host = %v; want ErrFailed, a commit fault", err)
	}
	_, err = w.agent(t, "gamma").deploy(t, c)
	if !errors.Is(err, release.ErrInvalid) || !strings.Contains(err.Error(), `does not name host "gamma"`) {
		t.Errorf("deploy on a host the release does not name = %v; want ErrInvalid", err)
	}
}

// TestBuilderSkipsWhatDidNotChange: a host whose derivation did not change
// is neither built nor copied again, and a released commit is not redone.
func TestBuilderSkipsWhatDidNotChange(t *testing.T) {
	w := newWorld(t)
	first := w.build(t, w.commit(t, w.hosts("1", "1"), "fleet"))
	w.builtRec.Reset(t)
	c := w.commit(t, w.hosts("2", "1"), "alpha only")
	second := w.build(t, c)

	if second.Hosts["beta"] != first.Hosts["beta"] || second.Hosts["alpha"] == first.Hosts["alpha"] {
		t.Fatalf("second release hosts = %+v; want beta unchanged, alpha new", second.Hosts)
	}
	var realised, copied []string
	for _, call := range w.builtRec.Calls(t) {
		switch {
		case slices.Contains(call, "--realise"):
			realised = append(realised, call[len(call)-3])
		case slices.Contains(call, "copy"):
			copied = append(copied, call[len(call)-1])
		}
	}
	if !slices.Equal(realised, []string{second.Hosts["alpha"].DrvPath}) || !slices.Equal(copied, []string{second.Hosts["alpha"].OutPath}) {
		t.Errorf("built %q and copied %q; want only alpha's", realised, copied)
	}
	if p := w.builder.Progress(); p.Hosts["beta"].Phase != PhaseUnchanged {
		t.Errorf("beta's phase = %q; want %q", p.Hosts["beta"].Phase, PhaseUnchanged)
	}

	w.builtRec.Reset(t)
	if _, err := w.repo.Fetch(context.Background()); err != nil { // as every pass does first
		t.Fatal(err)
	}
	again, err := w.builder.Release(context.Background(), c)
	if err != nil || again.ID != second.ID {
		t.Fatalf("Release of a released commit = %s, %v; want the existing %s", again.ID, err, second.ID)
	}
	if calls := w.builtRec.Calls(t); len(calls) != 0 {
		t.Errorf("Release of a released commit ran nix: %q", calls)
	}
}

// TestBuilderRetriesWithoutPublishing: when the cache cannot be reached the
// builder publishes nothing and says why; the next attempt finishes the
// hosts that were not done and publishes.
func TestBuilderRetriesWithoutPublishing(t *testing.T) {
	w := newWorld(t)
	c := w.commit(t, w.hosts("1", "1"), "fleet")
	cacheURL := w.builder.CacheURL
	w.builder.CacheURL = "http://127.0.0.1:1"
	w.builder.Nix.(*rebuild.Nix).ExtraArgs = append(nixtest.Args(), "--option", "download-attempts", "1")
	if _, err := w.repo.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, err := w.builder.Release(context.Background(), c)
	if err == nil || !rebuild.IsTransient(err) || IsCommitFault(err) {
		t.Fatalf("Release with the cache down = %v; want a transient error", err)
	}
	t.Logf("message: %v", err)
	if p := w.builder.Progress(); p.Hosts["alpha"].Phase != PhaseWaiting || p.Error == "" || p.Release != "" {
		t.Errorf("Progress = %+v; want alpha waiting, an error and no release", p)
	}
	if out := w.work.Git(t, "-C", w.bare, "branch", "--list", release.Branch); out != "" {
		t.Fatalf("the release branch exists after a failed attempt")
	}

	w.builder.CacheURL = cacheURL
	w.builtRec.Reset(t)
	found, err := w.builder.Release(context.Background(), c)
	if err != nil || len(found.Hosts) != 3 {
		t.Fatalf("second Release = %+v, %v; want a release with 3 hosts", found, err)
	}
	evaluated := 0
	for _, call := range w.builtRec.Calls(t) {
		if slices.Contains(call, "eval") && strings.Contains(strings.Join(call, " "), "nixosConfigurations.broken.") {
			t.Errorf("the retry evaluated the broken host again: %q", call)
		}
		if slices.Contains(call, "eval") {
			evaluated++
		}
	}
	if evaluated != 3 { // the list of outputs, alpha and beta
		t.Errorf("the retry ran %d evaluations; want 3 (outputs, alpha, beta)", evaluated)
	}
}

// TestHostRefusesWhatItDidNotVerify: releases exist for a commit the host
// refuses (unsigned) and name another host's system for this host; the
// host deploys neither and its store stays as it was.
func TestHostRefusesWhatItDidNotVerify(t *testing.T) {
	w := newWorld(t)
	good := w.build(t, w.commit(t, w.hosts("1", "1"), "fleet"))

	// An unsigned commit on main, built and released by a careless builder.
	if err := nixtest.WriteFleet(w.work.Dir, w.hosts("evil", "1")); err != nil {
		t.Fatal(err)
	}
	unsigned := w.work.Commit(t, nil, "unsigned")
	w.work.Push(t, w.bare, "HEAD:refs/heads/main")
	if _, err := w.repo.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	evil, err := w.builder.Release(context.Background(), unsigned)
	if err != nil {
		t.Fatal(err)
	}
	w.evict(t, evil.Release)
	alpha := w.agent(t, "alpha")
	if _, err := alpha.deploy(t, unsigned); !errors.Is(err, gitsync.ErrUnsigned) {
		t.Fatalf("deploy of an unsigned commit = %v; want it refused at verification", err)
	}
	if valid(evil.Hosts["alpha"].OutPath) {
		t.Errorf("the refused commit's system reached the host")
	}

	// A release, signed by the builder key, giving alpha beta's system.
	forged := good.Release
	forged.Hosts = map[string]release.Host{"alpha": good.Hosts["beta"]}
	forged.Time = time.Now()
	if _, err := w.repo.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	old, id, err := release.Commit(w.repo.Dir, "", forged, w.builder.Signer)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.repo.Push(context.Background(), release.Branch, old, id); err != nil {
		t.Fatal(err)
	}
	_, err = alpha.deploy(t, good.Commit)
	if !errors.Is(err, release.ErrInvalid) || !strings.Contains(err.Error(), "is not this host's system") {
		t.Fatalf("deploy of a release naming beta's system = %v; want ErrInvalid", err)
	}
	t.Logf("message: %v", err)
	if calls := alpha.rec.Calls(t); len(calls) != 0 {
		t.Errorf("refusing ran nix: %q", calls)
	}
}

// TestHostWaitsForRelease: a verified commit without a release yet is
// "not yet", never a fault of the commit.
func TestHostWaitsForRelease(t *testing.T) {
	w := newWorld(t)
	w.build(t, w.commit(t, w.hosts("1", "1"), "fleet"))
	c := w.commit(t, w.hosts("2", "2"), "newer")
	_, err := w.agent(t, "alpha").deploy(t, c)
	if !errors.Is(err, release.ErrNotYet) || IsCommitFault(err) {
		t.Fatalf("deploy before the builder released %s = %v; want ErrNotYet", c, err)
	}
}

// TestTwoBuildersOneRelease: a second builder with the same key that lost
// the race to publish takes the winner's release instead of adding one.
func TestTwoBuildersOneRelease(t *testing.T) {
	w := newWorld(t)
	c := w.commit(t, w.hosts("1", "1"), "fleet")
	lateRepo := w.mirror(t)
	b := w.builder
	late := &Builder{Name: "beacon", RepoDir: lateRepo.Dir, Branch: "main", Git: lateRepo, Nix: b.Nix,
		CacheURL: b.CacheURL, SigningKeyFile: b.SigningKeyFile, Signer: b.Signer, GCRootDir: t.TempDir()}
	if _, err := lateRepo.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	first := w.build(t, c)
	got, err := late.Release(context.Background(), c)
	if err != nil || got.ID != first.ID || got.Builder != "cardinal" {
		t.Fatalf("late builder's Release = %s by %s, %v; want cardinal's %s", got.ID, got.Builder, err, first.ID)
	}
	if head := w.work.Git(t, "-C", w.bare, "rev-parse", "refs/heads/"+release.Branch); head != first.ID {
		t.Errorf("release branch = %s; want only cardinal's release %s", head, first.ID)
	}
}
