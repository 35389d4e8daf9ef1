package bench

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/pkg/gitsync/gittest"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
	"github.com/avalanche-fleet/avalanche/pkg/release"
)

// Builder mode in the crash-consistency suite: two agents built with
// -tags failpoint share one repository and one binary cache. The builder
// (builder.enable) evaluates, builds, signs, copies and publishes; the host
// (deploy.source builder) finds the release and substitutes its system.
// Stops, kills and power cuts land in the host's release lookup
// (the evaluate step) and substitution (the build step), and in the
// builder's evaluation, signing, copying and publishing. Invariants: a
// release never names a closure the cache does not hold completely (looked
// at right after each injection, before anything restarts), no good commit
// is ever refused, and each commit ends deployed on both agents.
var (
	builderCrashPhases = []string{"evaluate", "build", "builder-evaluate", "builder-sign", "builder-copy", "builder-publish"}
	// builderFaults are the infrastructure faults, each injected around one
	// commit and then mended.
	builderFaults = []string{"cache down", "cache missing a path", "narinfo signed by an untrusted key",
		"untrusted release first", "release branch force-pushed"}
)

const builderName = "cardinal"

// builderRun is one run of the builder-mode suite.
type builderRun struct {
	t       *testing.T
	h, b    *host // the host in builder mode, the builder
	bOpts   nixtest.FlakeOptions
	cache   *nixtest.Cache
	down    atomic.Bool // the cache answers 503
	foreign string      // a release key nobody trusts
	n       int
	head    string
	counts  map[[2]string]int
	landed  map[[2]string]int
	faults  map[string]int
	// violations are broken invariants.
	violations []string
}

// TestReliabilityBuilderCrash: each phase once with one signal (the signals
// rotate) and each fault once; AVALANCHE_BENCH_FULL=1 makes it every phase
// × signal 5 times (90 injections, 15 per phase) and every fault 3 times.
func TestReliabilityBuilderCrash(t *testing.T) {
	r := newBuilderRun(t)
	r.next(t)
	r.b.start()
	r.h.start()
	r.release(t)
	r.deployHost(t, "first deployment")
	if fullRun() {
		for range 5 {
			for _, sig := range crashSignals {
				for _, phase := range builderCrashPhases {
					r.inject(t, phase, sig)
				}
			}
		}
		for range 3 {
			for _, f := range builderFaults {
				r.fault(t, f)
			}
		}
	} else {
		for i, phase := range builderCrashPhases {
			r.inject(t, phase, crashSignals[i%len(crashSignals)])
		}
		for _, f := range builderFaults {
			r.fault(t, f)
		}
	}
	r.report(t)
}

func newBuilderRun(t *testing.T) *builderRun {
	r := &builderRun{t: t, cache: nixtest.NewCache(t, "fleet-cache-1"), counts: map[[2]string]int{},
		landed: map[[2]string]int{}, faults: map[string]int{}}
	keys := t.TempDir()
	aliceKey, alicePub := gittest.NewSSHKey(t, keys, "alice")
	releaseKey, releasePub := gittest.NewSSHKey(t, keys, "builder")
	r.foreign, _ = gittest.NewSSHKey(t, keys, "someone")
	signers := filepath.Join(keys, "allowed_signers")
	writeFile(t, signers, gittest.AllowedSigner("alice", alicePub)+"\n"+`builder namespaces="`+release.Namespace+`" `+releasePub+"\n")
	cacheURL := r.serveCache(t)
	env := []string{"AVALANCHE_FAILPOINT_DELAY=" + failpointDelay.String()}
	r.h = newHost(t, hostOptions{mutate: func(c map[string]any) {
		d := c["deploy"].(map[string]any)
		d["source"], d["builderFallback"], d["builderTimeout"] = "builder", "wait", "1h"
		d["cache"] = map[string]any{"url": cacheURL, "publicKeys": []string{r.cache.PublicKey}}
		c["verify"] = map[string]any{"allowedSignersFile": signers}
		// One download attempt: a cache that is down fails the pass at once.
		d["nixArgs"] = append(nixtest.Args(), "--option", "download-attempts", "1")
	}})
	r.h.opts.Deps = 10 // a closure of some paths, so substitution takes a moment
	r.b = newHost(t, hostOptions{url: r.h.server.URL, mutate: func(c map[string]any) {
		c["hostname"] = builderName
		c["verify"] = map[string]any{"allowedSignersFile": signers}
		c["builder"] = map[string]any{"enable": true, "cacheURL": r.cache.URL, "signingKeyFile": r.cache.SecretKeyFile,
			"releaseKeyFile": releaseKey, "parallelism": 1}
	}})
	r.bOpts = r.b.opts
	r.bOpts.Name = builderName
	for _, a := range []*host{r.h, r.b} {
		a.binary, a.env = buildAgent(t, "failpoint"), env
	}
	w := r.h.up.Work
	nixtest.Git(t, w, "config", "gpg.format", "ssh")
	nixtest.Git(t, w, "config", "user.signingkey", aliceKey)
	nixtest.Git(t, w, "-C", r.h.up.Bare, "config", "http.receivepack", "true")
	return r
}

// serveCache serves the cache directory over HTTP, answering 503 while
// r.down is set.
func (r *builderRun) serveCache(t *testing.T) string {
	files := http.FileServer(http.Dir(r.cache.Dir))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if r.down.Load() {
			http.Error(w, "cache down", http.StatusServiceUnavailable)
			return
		}
		files.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// next pushes the next commit, signed: both systems change, each with a
// kernel, initrd and dependencies of its own.
func (r *builderRun) next(t *testing.T) {
	r.n++
	m := fmt.Sprintf("%s %d %d", t.Name(), time.Now().UnixNano(), r.n)
	for _, o := range []*nixtest.FlakeOptions{&r.h.opts, &r.bOpts} {
		o.Marker, o.Kernel, o.Initrd, o.KernelModules = m, "kernel "+o.Name+m, "initrd "+o.Name+m, "modules "+o.Name+m
	}
	r.h.opts.Deps = 10
	up := r.h.up
	if err := nixtest.WriteFleet(up.Work, []nixtest.FlakeOptions{r.h.opts, r.bOpts}); err != nil {
		t.Fatal(err)
	}
	nixtest.Git(t, up.Work, "add", "--all")
	nixtest.Git(t, up.Work, "commit", "--quiet", "--allow-empty", "-S", "-m", fmt.Sprintf("commit %d", r.n))
	nixtest.Git(t, up.Work, "push", "--quiet", "--force", up.Bare, "HEAD:refs/heads/"+up.Branch)
	r.head = nixtest.Git(t, up.Work, "rev-parse", "HEAD")
}

// release has the builder release and deploy the head, then takes the
// host's released system out of the store, so the host must substitute it.
func (r *builderRun) release(t *testing.T) {
	t.Helper()
	r.b.trigger()
	r.settleBuilder(t, "releasing "+short(r.head))
	r.evict(t)
}

// settleBuilder waits until the builder published a trusted release of the
// head and deployed it itself; it asks for a pass when one ends otherwise.
func (r *builderRun) settleBuilder(t *testing.T, what string) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
		s, err := r.b.status()
		if err == nil && s.Deployed != nil && s.Deployed.Commit == r.head && s.State == "idle" && r.released(r.head) != "" {
			return
		}
		if err == nil && (s.State == "idle" || s.State == "failed") && s.Passes > 0 && rand.IntN(10) == 0 {
			r.b.trigger()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the builder never settled: %+v, %v\n%s", what, s, err, r.b.logTail())
		}
	}
}

// released returns the host's store path in the newest release of commit
// on the upstream branch, "" when there is none.
func (r *builderRun) released(commit string) string {
	return r.releasedHost(commit).OutPath
}

func (r *builderRun) releasedHost(commit string) release.Host {
	for _, rel := range r.releases() {
		if rel.Commit == commit {
			return rel.Hosts[hostName]
		}
	}
	return release.Host{}
}

// releases reads every release document on the upstream release branch,
// newest first (whoever signed it: the cache check holds for all).
func (r *builderRun) releases() []release.Release { return releasesIn(r.h.up.Bare) }

// releasesIn reads every release document on the release branch of the
// bare repository, newest first.
func releasesIn(bare string) []release.Release {
	out, err := gitOut(bare, "log", "--first-parent", "--format=%H", "refs/heads/"+release.Branch)
	if err != nil {
		return nil
	}
	var rels []release.Release
	for _, c := range strings.Fields(out) {
		doc, err := gitOut(bare, "show", c+":"+release.File)
		if err != nil {
			continue
		}
		if rel, err := release.Decode([]byte(doc)); err == nil {
			rels = append(rels, rel)
		}
	}
	return rels
}

// evict deletes the host's released system and its closure from the store
// (the builder's GC root for it goes first; the builder built it here).
func (r *builderRun) evict(t *testing.T) {
	t.Helper()
	h := r.releasedHost(r.head)
	if h.OutPath == "" || resolve(r.h.opts.CurrentSystemLink) == h.OutPath {
		return
	}
	os.Remove(filepath.Join(r.b.stateDir(), "builder-gcroots", hostName))
	if _, err := os.Stat(h.OutPath); err == nil {
		nixtest.DeleteFromStore(t, append([]string{h.DrvPath}, nixtest.Closure(t, h.OutPath)...)...)
	}
}

// deployHost has the host deploy the head and checks it.
func (r *builderRun) deployHost(t *testing.T, what string) {
	t.Helper()
	r.h.trigger()
	r.settleHost(t, what)
	r.check(what)
}

// settleHost waits until the host deployed the head, asking for passes
// while it retries.
func (r *builderRun) settleHost(t *testing.T, what string) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
		s, err := r.h.status()
		if err == nil && s.Deployed != nil && s.Deployed.Commit == r.head && s.State == "idle" {
			return
		}
		if err == nil && s.State != "deploying" && rand.IntN(10) == 0 {
			r.h.trigger()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the host never deployed %s: %+v, %v\n%s", what, short(r.head), s, err, r.h.logTail())
		}
	}
}

func short(c string) string { return c[:min(12, len(c))] }

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// kill stops, kills or cuts the power of agent a.
func kill(a *host, signal string) {
	switch signal {
	case "SIGTERM":
		a.stop()
	case "SIGKILL agent":
		syscall.Kill(a.proc.Process.Pid, syscall.SIGKILL)
		a.wait()
	case "power cut":
		a.kill()
	}
}
