package daemon_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/builder"
	"github.com/avalanche-fleet/avalanche/agent/internal/daemon"
	"github.com/avalanche-fleet/avalanche/pkg/gitsync"
	"github.com/avalanche-fleet/avalanche/pkg/gitsync/gittest"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
	"github.com/avalanche-fleet/avalanche/pkg/release"
)

// fleetBuilder is the builder of a builder-mode host: the real builder
// role, with its own copy of the host's repository, releasing into a real
// binary cache (key from nix-store --generate-binary-cache-key) that the
// host reaches over HTTP. After each release the host's store loses the
// released system, so the host truly has to substitute it.
type fleetBuilder struct {
	b       *builder.Builder
	repo    *gitsync.Repo
	cache   *nixtest.Cache
	served  *cacheServer
	signers string // allowed_signers listing the builder's release key
	other   *release.Signer
	key     string // the builder's release key file
	id      string // makes this test's store paths its own
	running string // the host's current-system link
}

// builderMode puts a host in builder mode: deploy.source builder, the
// cache and its key, the builder's signers, the timeout and fallback.
func (fb *fleetBuilder) builderMode(timeout, fallback string) func(c map[string]any) {
	return func(c map[string]any) {
		d := c["deploy"].(map[string]any)
		d["source"], d["builderTimeout"], d["builderFallback"] = "builder", timeout, fallback
		d["cache"] = map[string]any{"url": fb.served.URL, "publicKeys": []string{fb.cache.PublicKey}}
		// One file lists alice, who signs commits, and the release key.
		c["verify"] = map[string]any{"allowedSignersFile": fb.signers, "builderSignersFile": fb.signers}
	}
}

// newBuilderHost returns a host in builder mode and its builder.
func newBuilderHost(t *testing.T, timeout, fallback string, mutate func(c map[string]any)) (*host, *fleetBuilder) {
	t.Helper()
	nixtest.Require(t)
	keys := t.TempDir()
	releaseKey, pub := gittest.NewSSHKey(t, keys, "builder")
	otherKey, _ := gittest.NewSSHKey(t, keys, "someone")
	aliceKey, alicePub := gittest.NewSSHKey(t, keys, "alice")
	fb := &fleetBuilder{cache: nixtest.NewCache(t, "fleet-cache-1"), signers: filepath.Join(keys, "allowed_signers"),
		id: fmt.Sprintf("%s %d", t.Name(), time.Now().UnixNano())}
	fb.served = serveCache(t, fb.cache.Dir)
	writeTestFile(t, fb.signers, gittest.AllowedSigner("alice", alicePub)+"\n"+`builder namespaces="`+release.Namespace+`" `+pub+"\n")
	h := newHost(t, func(c map[string]any) {
		fb.builderMode(timeout, fallback)(c)
		if mutate != nil {
			mutate(c)
		}
	})
	h.signKey = aliceKey // builder mode requires signed commits
	nixtest.Git(t, h.dir, "-C", h.up.Bare, "config", "http.receivepack", "true")
	fb.running = h.current
	fb.repo = &gitsync.Repo{Dir: filepath.Join(t.TempDir(), "repo.git"), Branches: []string{"main", release.Branch},
		Remote: gitsync.Remote{URL: h.server.URL, TokenFile: h.cfg.Repository.TokenFile}}
	fb.key = releaseKey
	signer, err := release.LoadSigner(releaseKey)
	if err != nil {
		t.Fatal(err)
	}
	if fb.other, err = release.LoadSigner(otherKey); err != nil {
		t.Fatal(err)
	}
	fb.b = &builder.Builder{Name: "cardinal", RepoDir: fb.repo.Dir, Branch: "main", Git: fb.repo,
		Nix:      &rebuild.Nix{ExtraArgs: nixtest.Args(), Env: nixtest.Env(t)},
		CacheURL: fb.cache.URL, SigningKeyFile: fb.cache.SecretKeyFile, Signer: signer,
		GCRootDir: filepath.Join(t.TempDir(), "gcroots")}
	return h, fb
}

// commit pushes the host's system at version marker; kernel, initrd and
// modules are this test's own, so evicting them touches no other test.
func (fb *fleetBuilder) commit(h *host, marker, msg string) string {
	h.t.Helper()
	m := fb.id + " " + marker
	h.opts.Marker, h.opts.Kernel, h.opts.Initrd, h.opts.KernelModules = marker, "kernel "+m, "initrd "+m, "modules "+m
	return h.commit(msg, nil)
}

// release has the builder fetch and release commit, then evicts the
// released system from the store.
func (fb *fleetBuilder) release(t *testing.T, commit string) release.Found {
	t.Helper()
	if _, err := fb.repo.Fetch(context.Background()); err != nil {
		t.Fatalf("builder Fetch = %v", err)
	}
	found, err := fb.b.Release(context.Background(), commit)
	if err != nil {
		t.Fatalf("builder Release(%s) = %v", commit, err)
	}
	fb.evict(t, found.Hosts[hostName])
	return found
}

// evict deletes a released system, its derivation and its closure from
// the store (what the host already runs stays: it is GC-rooted).
func (fb *fleetBuilder) evict(t *testing.T, h release.Host) {
	t.Helper()
	if err := os.RemoveAll(fb.b.GCRootDir); err != nil {
		t.Fatal(err)
	}
	if !storeValid(h.OutPath) {
		return
	}
	if h.OutPath == currentTarget(t, fb.running) {
		return // the host runs it already (a commit that changed nothing)
	}
	nixtest.DeleteFromStore(t, append([]string{h.DrvPath}, nixtest.Closure(t, h.OutPath)...)...)
}

// publish pushes rel, signed by s, as the newest release.
func (fb *fleetBuilder) publish(t *testing.T, rel release.Release, s *release.Signer) {
	t.Helper()
	ctx := context.Background()
	if _, err := fb.repo.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	rel.Time = time.Now()
	old, id, err := release.Commit(fb.repo.Dir, "", rel, s)
	if err == nil {
		err = fb.repo.Push(ctx, release.Branch, old, id)
	}
	if err != nil {
		t.Fatalf("publishing a release: %v", err)
	}
}

func storeValid(p string) bool {
	_, err := os.Stat(p)
	return p != "" && err == nil
}

// cacheServer serves a binary cache directory over HTTP. While held, NAR
// downloads wait, so a test can stop the agent in the middle of a
// substitution.
type cacheServer struct {
	URL     string
	held    atomic.Bool
	reached chan struct{}
	once    sync.Once
	release chan struct{}
	nars    atomic.Int64
}

func serveCache(t *testing.T, dir string) *cacheServer {
	s := &cacheServer{reached: make(chan struct{}), release: make(chan struct{})}
	files := http.FileServer(http.Dir(dir))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/nar/") {
			s.nars.Add(1)
			if s.held.Load() {
				s.once.Do(func() { close(s.reached) })
				select {
				case <-s.release:
				case <-r.Context().Done():
					return
				}
			}
		}
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(s.open)
	s.URL = srv.URL
	return s
}

// open lets held downloads go on.
func (s *cacheServer) open() {
	s.held.Store(false)
	select {
	case <-s.release:
	default:
		close(s.release)
	}
}

func (s *cacheServer) waitReached(t *testing.T) {
	t.Helper()
	select {
	case <-s.reached:
	case <-time.After(time.Minute):
		t.Fatal("no NAR download began")
	}
}

// recordNix makes every nix command the host's daemon runs go through a
// recorder (evaluation, build, substitution, profile, everything).
func recordNix(t *testing.T, h *host) *nixtest.Recorder {
	rec := nixtest.NewRecorder(t)
	prev := h.setup
	h.setup = func(d *daemon.Daemon) {
		d.Nix.(*rebuild.Nix).BinDir = rec.Dir
		if prev != nil {
			prev(d)
		}
	}
	return rec
}

// substitutions returns the recorded nix-store --realise calls.
func substitutions(calls [][]string) [][]string {
	var out [][]string
	for _, c := range calls {
		if c[0] == "nix-store" && slices.Contains(c, "--realise") {
			out = append(out, c)
		}
	}
	return out
}

func writeTestFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// commitSigned commits the work tree signed with h.signKey and pushes it.
func (h *host) commitSigned(msg string) string {
	h.t.Helper()
	w := h.up.Work
	nixtest.Git(h.t, w, "add", "--all")
	nixtest.Git(h.t, w, "-c", "gpg.format=ssh", "-c", "user.signingkey="+h.signKey, "commit", "--quiet", "--allow-empty", "-S", "-m", msg)
	nixtest.Git(h.t, w, "push", "--quiet", "--force", h.up.Bare, "HEAD:refs/heads/"+h.up.Branch)
	return nixtest.Git(h.t, w, "rev-parse", "HEAD")
}
