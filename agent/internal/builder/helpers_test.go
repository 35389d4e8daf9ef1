package builder

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/pkg/gitsync"
	"github.com/avalanche-fleet/avalanche/pkg/gitsync/gittest"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
	"github.com/avalanche-fleet/avalanche/pkg/release"
)

// world is a fleet repository served over smart HTTP, a binary cache, a
// builder and the keys of both trust chains: alice signs commits, the
// builder signs releases, the cache key signs narinfos.
type world struct {
	work     *gittest.WorkRepo
	bare     string
	server   *gittest.HTTPServer
	cache    *nixtest.Cache
	cacheURL string // the cache served over HTTP, as hosts see it
	aliceKey string
	allowed  string
	marker   string

	builder  *Builder
	repo     *gitsync.Repo // the builder's copy
	builtRec *nixtest.Recorder
}

func newWorld(t *testing.T) *world {
	t.Helper()
	nixtest.Require(t)
	w := &world{work: gittest.NewRepo(t), bare: gittest.NewBare(t), marker: t.Name() + time.Now().String()}
	keys := t.TempDir()
	var alicePub, builderPub string
	w.aliceKey, alicePub = gittest.NewSSHKey(t, keys, "alice")
	releaseKey, builderPub := gittest.NewSSHKey(t, keys, "builder")
	w.allowed = filepath.Join(keys, "allowed_signers")
	writeFile(t, w.allowed, gittest.AllowedSigner("alice", alicePub)+"\n"+
		`builder namespaces="`+release.Namespace+`" `+builderPub+"\n")
	w.work.Git(t, "-C", w.bare, "config", "http.receivepack", "true")
	w.server = gittest.StartHTTPServer(t, w.bare, "")
	w.cache = nixtest.NewCache(t, "fleet-cache-1")
	w.cacheURL = w.cache.Serve(t).URL

	signer, err := release.LoadSigner(releaseKey)
	if err != nil {
		t.Fatal(err)
	}
	w.repo = w.mirror(t)
	w.builtRec = nixtest.NewRecorder(t)
	w.builder = &Builder{
		Name: "cardinal", RepoDir: w.repo.Dir, Branch: "main", Git: w.repo,
		Nix:      &rebuild.Nix{ExtraArgs: nixtest.Args(), Env: nixtest.Env(t), BinDir: w.builtRec.Dir},
		CacheURL: w.cache.URL, SigningKeyFile: w.cache.SecretKeyFile, Signer: signer,
		GCRootDir: filepath.Join(t.TempDir(), "gcroots"),
	}
	return w
}

// mirror returns an agent's copy of the repository, tracking main and the
// release branch.
func (w *world) mirror(t *testing.T) *gitsync.Repo {
	return &gitsync.Repo{Dir: filepath.Join(t.TempDir(), "repo.git"), Remote: gitsync.Remote{URL: w.server.URL},
		Branches: []string{"main", release.Branch}}
}

// hosts are the fleet's systems at version v: alpha and beta build, broken
// does not evaluate. Each has a kernel, initrd and modules of its own, so
// deleting one system from the store leaves no other test's paths dead.
func (w *world) hosts(alpha, beta string) []nixtest.FlakeOptions {
	host := func(name, version string) nixtest.FlakeOptions {
		m := w.marker + " " + name + " " + version
		return nixtest.FlakeOptions{Name: name, Marker: m, Kernel: "kernel " + m, Initrd: "initrd " + m, KernelModules: "modules " + m}
	}
	return []nixtest.FlakeOptions{host("alpha", alpha), host("beta", beta),
		{Name: "broken", EvalError: "broken: this host's configuration does not evaluate"}}
}

// commit writes the fleet, commits it signed by alice and pushes main.
func (w *world) commit(t *testing.T, hosts []nixtest.FlakeOptions, msg string) string {
	t.Helper()
	if err := nixtest.WriteFleet(w.work.Dir, hosts); err != nil {
		t.Fatal(err)
	}
	c := w.work.CommitSSHSigned(t, nil, msg, w.aliceKey)
	w.work.Push(t, w.bare, "HEAD:refs/heads/main")
	return c
}

// build has the builder fetch, verify commit like every agent and release it.
func (w *world) build(t *testing.T, commit string) release.Found {
	t.Helper()
	ctx := context.Background()
	if _, err := w.repo.Fetch(ctx); err != nil {
		t.Fatalf("builder Fetch = %v", err)
	}
	if _, err := w.repo.VerifyCommit(ctx, commit, gitsync.Signers{AllowedSignersFile: w.allowed}); err != nil {
		t.Fatalf("builder VerifyCommit = %v", err)
	}
	found, err := w.builder.Release(ctx, commit)
	if err != nil {
		t.Fatalf("Release(%s) = %v", commit, err)
	}
	return found
}

// evict makes the store forget the systems of rel, as if the builder had
// been another machine: the builder's GC roots go, then every path of the
// hosts' closures and their derivations.
func (w *world) evict(t *testing.T, rel release.Release) {
	t.Helper()
	if err := os.RemoveAll(w.builder.GCRootDir); err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, h := range rel.Hosts {
		if h.OutPath != "" && valid(h.OutPath) {
			paths = append(paths, h.DrvPath)
			paths = append(paths, nixtest.Closure(t, h.OutPath)...)
		}
	}
	nixtest.DeleteFromStore(t, paths...)
}

// agent is a host in builder mode: its own copy of the repository, its
// Source, and a recorder of every nix command it runs.
type agent struct {
	repo    *gitsync.Repo
	source  *Source
	rec     *nixtest.Recorder
	allowed string
}

func (w *world) agent(t *testing.T, output string) *agent {
	t.Helper()
	k, err := rebuild.ParseCacheKey(w.cache.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	a := &agent{repo: w.mirror(t), rec: nixtest.NewRecorder(t), allowed: w.allowed}
	a.source = &Source{
		Finder: release.Finder{RepoDir: a.repo.Dir, Verifier: release.AllowedSigners(w.allowed, "builder")},
		Self:   release.Self{Output: output, System: rebuild.System()},
		Cache:  rebuild.Cache{URL: w.cacheURL, Keys: []rebuild.CacheKey{k}},
		Nix:    &rebuild.Nix{ExtraArgs: nixtest.Args(), Env: nixtest.Env(t), BinDir: a.rec.Dir},
	}
	return a
}

// deploy is what the daemon does in builder mode up to the build step:
// fetch, verify the commit, resolve its release, substitute the system.
func (a *agent) deploy(t *testing.T, commit string) (string, error) {
	t.Helper()
	ctx := context.Background()
	if _, err := a.repo.Fetch(ctx); err != nil {
		t.Fatalf("host Fetch = %v", err)
	}
	if _, err := a.repo.VerifyCommit(ctx, commit, gitsync.Signers{AllowedSignersFile: a.allowed}); err != nil {
		return "", err
	}
	target, err := a.source.Resolve(ctx, commit)
	if err != nil {
		return "", err
	}
	return a.source.Realise(ctx, target, filepath.Join(t.TempDir(), "gcroots", "system"), nil)
}

func valid(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
