package builder

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/avalanche-fleet/avalanche/agent/internal/fault"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
	"github.com/avalanche-fleet/avalanche/pkg/release"
	"github.com/avalanche-fleet/avalanche/pkg/s3cache/s3test"
	"github.com/avalanche-fleet/avalanche/pkg/s3cache/s3url"
)

// s3World is a world whose cache is a bucket on a real S3 server
// (versitygw): the builder uploads through the avalanche-s3 helper, hosts substitute
// over the server's anonymous website endpoint.
func newS3World(t *testing.T) (*world, *s3test.Server) {
	t.Helper()
	w := newWorld(t)
	srv := s3test.Start(t)
	w.builder.Cache = &S3Cache{Helper: s3test.Helper(t), URL: srv.CacheURL, CredentialsFile: srv.CredentialsFile,
		Nix: w.builder.Nix.(*rebuild.Nix), StageDir: t.TempDir()}
	w.builder.CacheURL = ""
	w.cacheURL = srv.WebsiteURL
	return w, srv
}

// checkedPush is the builder's Git, except that each push of the release
// branch first checks that the bucket holds every path of every system
// the release names: what a host could read the moment it lands.
type checkedPush struct {
	Git
	t      *testing.T
	bucket *s3test.Server
	repo   string
	pushes int
}

func (g *checkedPush) Push(ctx context.Context, branch, old, commit string) error {
	g.pushes++
	doc, err := exec.Command("git", "-C", g.repo, "show", commit+":"+release.File).Output()
	if err != nil {
		g.t.Fatalf("reading the release about to be pushed: %v", err)
	}
	rel, err := release.Decode(doc)
	if err != nil {
		g.t.Fatalf("decoding the release about to be pushed: %v", err)
	}
	for name, h := range rel.Hosts {
		if h.OutPath == "" {
			continue
		}
		for _, p := range nixtest.Closure(g.t, h.OutPath) {
			if !g.bucket.Has(g.t, s3url.NarinfoKey(p)) {
				g.t.Errorf("release of %s published while the bucket lacks %s of %s", rel.Commit, filepath.Base(p), name)
			}
		}
	}
	return g.Git.Push(ctx, branch, old, commit)
}

// losingNix is the builder's Nix, except that after nix copy has staged
// the NARs for the bucket it deletes one of them (of a kernel), so the
// upload stops part-way: some objects are in the bucket, not all.
type losingNix struct{ *rebuild.Nix }

func (n losingNix) Copy(ctx context.Context, storeURL, path string) error {
	if err := n.Nix.Copy(ctx, storeURL, path); err != nil {
		return err
	}
	dir := strings.TrimPrefix(storeURL, "file://")
	infos, _ := filepath.Glob(filepath.Join(dir, "*.narinfo"))
	for _, f := range infos {
		b, _ := os.ReadFile(f)
		if strings.Contains(string(b), "-kernel") && strings.HasPrefix(string(b), "StorePath:") {
			for line := range strings.Lines(string(b)) {
				if nar, ok := strings.CutPrefix(line, "URL: "); ok {
					return os.Remove(filepath.Join(dir, strings.TrimSpace(nar)))
				}
			}
		}
	}
	return fmt.Errorf("losingNix: no kernel staged in %s", dir)
}

// TestS3ReleaseOnlyOnceTheBucketHoldsEveryPath: an upload to the bucket
// that stops part-way publishes nothing (the host keeps waiting, no
// verdict); the next attempt uploads the rest and publishes, and at the
// moment of the push the bucket holds every path of every system named.
// The host then substitutes its system from the website endpoint.
func TestS3ReleaseOnlyOnceTheBucketHoldsEveryPath(t *testing.T) {
	w, srv := newS3World(t)
	push := &checkedPush{Git: w.repo, t: t, bucket: srv, repo: w.repo.Dir}
	w.builder.Git = push
	c := w.commit(t, w.hosts("1", "1"), "fleet")
	cache := w.builder.Cache.(*S3Cache)
	real := cache.Nix
	cache.Nix = losingNix{real.(*rebuild.Nix)}
	if _, err := w.repo.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, err := w.builder.Release(context.Background(), c)
	if err == nil || release.IsCommitFault(err) {
		t.Fatalf("Release with a broken upload = %v; want the cache's trouble", err)
	}
	if push.pushes != 0 {
		t.Fatalf("a release was pushed after a partial upload")
	}
	if _, err := w.agent(t, "alpha").deploy(t, c); !errors.Is(err, release.ErrNotYet) {
		t.Errorf("the host's deployment = %v; want it waiting for a release", err)
	}

	cache.Nix = real
	found := w.build(t, c)
	if push.pushes != 1 {
		t.Errorf("pushes = %d; want 1", push.pushes)
	}
	w.evict(t, found.Release)
	for _, name := range []string{"alpha", "beta"} {
		if out, err := w.agent(t, name).deploy(t, c); err != nil || out != found.Hosts[name].OutPath {
			t.Errorf("%s's deployment = %q, %v; want %s", name, out, err, found.Hosts[name].OutPath)
		}
	}
}

// TestS3BucketThatLosesAPath: an object deleted from the bucket (the NAR
// of a kernel in beta's closure) is the cache's trouble on the host:
// fault.Transient, never the commit's. The builder's next release finds
// the loss although beta did not change, uploads it again (and only what
// was lost), and the host then substitutes its system.
func TestS3BucketThatLosesAPath(t *testing.T) {
	w, srv := newS3World(t)
	first := w.build(t, w.commit(t, w.hosts("1", "1"), "fleet"))
	beta := first.Hosts["beta"].OutPath
	var kernel string
	for _, p := range nixtest.Closure(t, beta) {
		if strings.Contains(p, "-kernel") {
			kernel = p
		}
	}
	nar := narOf(t, srv, kernel)
	top := s3url.NarinfoKey(beta)
	written := srv.Modified(t, top)
	srv.Remove(t, nar)
	w.evict(t, first.Release)
	_, err := w.agent(t, "beta").deploy(t, first.Commit)
	if err == nil || fault.Of(err) != fault.Transient || IsCommitFault(err) {
		t.Fatalf("beta's deployment from a bucket without %s = %v (class %s); want transient, no verdict", nar, err, fault.Of(err))
	}
	t.Logf("message: %v", err)

	second := w.build(t, w.commit(t, w.hosts("2", "1"), "alpha only"))
	if second.Hosts["beta"] != first.Hosts["beta"] {
		t.Fatalf("beta changed: %+v; want the same system", second.Hosts["beta"])
	}
	if !srv.Has(t, nar) {
		t.Errorf("the bucket still lacks %s after the next release", nar)
	}
	if again := srv.Modified(t, top); !again.Equal(written) {
		t.Errorf("%s (beta's system, never lost) written again at %s; want only what was lost uploaded", top, again)
	}
	w.evict(t, second.Release)
	if out, err := w.agent(t, "beta").deploy(t, second.Commit); err != nil || out != beta {
		t.Errorf("beta's deployment = %q, %v; want %s", out, err, beta)
	}
}

// narOf returns the NAR object the bucket's narinfo of path names.
func narOf(t *testing.T, srv *s3test.Server, path string) string {
	t.Helper()
	narinfo := srv.Get(t, s3url.NarinfoKey(path))
	for line := range strings.Lines(narinfo) {
		if nar, ok := strings.CutPrefix(line, "URL: "); ok {
			return strings.TrimSpace(nar)
		}
	}
	t.Fatalf("narinfo of %s has no URL:\n%s", path, narinfo)
	return ""
}

// TestS3HelperFailuresAreTheCachesTrouble: when avalanche-s3 fails (the
// endpoint unreachable, the keys refused) the builder's error is the
// cache's trouble, fault.Transient and never the commit's, carrying the
// helper's command line and what it said; nothing is published.
func TestS3HelperFailuresAreTheCachesTrouble(t *testing.T) {
	w, srv := newS3World(t)
	first := w.build(t, w.commit(t, w.hosts("1", "1"), "fleet"))
	good := *w.builder.Cache.(*S3Cache)
	wrongKeys := filepath.Join(t.TempDir(), "credentials")
	if err := os.WriteFile(wrongKeys, []byte("[default]\naws_access_key_id = nobody\naws_secret_access_key = x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	unreachable := good
	unreachable.URL = strings.Replace(srv.CacheURL, srv.Endpoint, "127.0.0.1:1", 1)
	refused := good
	refused.CredentialsFile = wrongKeys
	for name, cache := range map[string]*S3Cache{"unreachable": &unreachable, "keys refused": &refused} {
		t.Run(name, func(t *testing.T) {
			_, err := cache.MissingFrom(context.Background(), first.Hosts["beta"].OutPath)
			if err == nil || fault.Of(err) != fault.Transient {
				t.Fatalf("MissingFrom = %v (class %s); want the cache's trouble", err, fault.Of(err))
			}
			t.Logf("message: %v", err)
			for _, want := range []string{cache.Helper, `"missing"`, "avalanche-s3: "} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("MissingFrom = %v; want it to name %q", err, want)
				}
			}
			w.builder.Cache = cache
			c := w.commit(t, w.hosts("2-"+name, "1"), "alpha only")
			if _, err := w.repo.Fetch(context.Background()); err != nil {
				t.Fatal(err)
			}
			if _, err := w.builder.Release(context.Background(), c); err == nil || release.IsCommitFault(err) ||
				fault.Of(err) != fault.Transient {
				t.Errorf("Release = %v (class %s); want the cache's trouble, no verdict", err, fault.Of(err))
			}
			if _, err := w.agent(t, "alpha").deploy(t, c); !errors.Is(err, release.ErrNotYet) {
				t.Errorf("alpha's deployment = %v; want it waiting for a release", err)
			}
		})
	}
}
