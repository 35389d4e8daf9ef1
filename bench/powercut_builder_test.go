package bench

import (
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/pkg/gitsync/gittest"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
	"github.com/avalanche-fleet/avalanche/pkg/release"
)

// The power-cut tier in builder mode (deploy.source builder): the guest
// evaluates nothing; it substitutes each system from the fleet cache that a
// builder on the test machine published, over HTTP. A cut during the
// substitution leaves paths Nix registered and never wrote; the store check
// after the boot repairs them from the fleet cache (nix-store
// --repair-path with the cache as substituter), since there is nothing to
// rebuild them from on the host.

// builderCutPhases are the short form's cuts: the substitution, the
// secrets of a substituted closure, the activation, and just after.
var builderCutPhases = []string{"build", "secrets", "activate", "after"}

// TestReliabilityPowerCutBuilderMode: 4 cuts; AVALANCHE_BENCH_FULL=1 makes
// it 5 rounds of every phase (50 cuts).
func TestReliabilityPowerCutBuilderMode(t *testing.T) {
	rounds, phases := 1, builderCutPhases
	if fullRun() {
		rounds, phases = 5, cutPhases
	}
	newCutRun(t, true).run(rounds, phases)
}

// vmBuilder is the builder of the builder-mode run: the real agent with
// builder.enable on the test machine, following the guest's repository,
// publishing to a binary cache the guest reaches at 10.0.2.2.
type vmBuilder struct {
	t    *testing.T
	r    *cutRun
	b    *host
	opts nixtest.FlakeOptions // the builder's own system
}

// newVMBuilder starts the builder and turns the guest's config (and the
// files of its disk) into a builder-mode host's: signed commits, signed
// releases, the cache and its key.
func newVMBuilder(t *testing.T, r *cutRun, url string, guest map[string]any, files map[string]string) *vmBuilder {
	keys := t.TempDir()
	aliceKey, alicePub := gittest.NewSSHKey(t, keys, "alice")
	releaseKey, releasePub := gittest.NewSSHKey(t, keys, "builder")
	signers := filepath.Join(keys, "allowed_signers")
	writeFile(t, signers, gittest.AllowedSigner("alice", alicePub)+"\n"+`builder namespaces="`+release.Namespace+`" `+releasePub+"\n")
	cache := nixtest.NewCache(t, "fleet-cache-vm")
	srv := cache.Serve(t)
	v := &vmBuilder{t: t, r: r}
	v.b = newHost(t, hostOptions{url: url, mutate: func(c map[string]any) {
		c["hostname"] = builderName
		c["verify"] = map[string]any{"allowedSignersFile": signers}
		c["builder"] = map[string]any{"enable": true, "cacheURL": cache.URL, "signingKeyFile": cache.SecretKeyFile,
			"releaseKeyFile": releaseKey, "parallelism": 1}
	}})
	v.opts = v.b.opts
	v.opts.Name = builderName
	d := guest["deploy"].(map[string]any)
	d["source"], d["builderFallback"], d["builderTimeout"] = "builder", "wait", "1h"
	d["cache"] = map[string]any{"url": strings.Replace(srv.URL, "127.0.0.1", "10.0.2.2", 1), "publicKeys": []string{cache.PublicKey}}
	guest["verify"] = map[string]any{"allowedSignersFile": "/avalanche/allowed_signers"}
	files["/avalanche/allowed_signers"] = signers
	w := r.up.Work
	nixtest.Git(t, w, "config", "gpg.format", "ssh")
	nixtest.Git(t, w, "config", "user.signingkey", aliceKey)
	nixtest.Git(t, w, "-C", r.up.Bare, "config", "http.receivepack", "true")
	v.b.start()
	return v
}

// commit commits the guest's and the builder's systems, signed, and
// returns once the builder published the commit's release: the guest
// then finds it at its next poll.
func (v *vmBuilder) commit(msg string) string {
	t, up := v.t, v.r.up
	if err := nixtest.WriteFleet(up.Work, []nixtest.FlakeOptions{v.r.opts, v.opts}); err != nil {
		t.Fatal(err)
	}
	nixtest.Git(t, up.Work, "add", "--all")
	nixtest.Git(t, up.Work, "commit", "--quiet", "--allow-empty", "-S", "-m", msg)
	nixtest.Git(t, up.Work, "push", "--quiet", up.Bare, "HEAD:refs/heads/"+up.Branch)
	head := nixtest.Git(t, up.Work, "rev-parse", "HEAD")
	v.b.trigger()
	for deadline := time.Now().Add(5 * time.Minute); !v.released(head); time.Sleep(100 * time.Millisecond) {
		if s, err := v.b.status(); err == nil && (s.State == "idle" || s.State == "failed") && rand.IntN(20) == 0 {
			v.b.trigger()
		}
		if time.Now().After(deadline) {
			t.Fatalf("the builder never released %s:\n%s", short(head), v.b.logTail())
		}
	}
	return head
}

// released reports whether the release branch holds a release of commit
// that names the guest's system.
func (v *vmBuilder) released(commit string) bool {
	for _, rel := range releasesIn(v.r.up.Bare) {
		if rel.Commit == commit && rel.Hosts[hostName].OutPath != "" {
			return true
		}
	}
	return false
}
