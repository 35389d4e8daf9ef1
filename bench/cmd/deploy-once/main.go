// Command deploy-once runs the host side of one deployment the way the
// agent does, up to the system being in the store, and prints what it
// cost as JSON. BenchmarkBuilderMode runs it as a separate small binary so
// that the measured process is agent-sized, not a test binary.
//
//	deploy-once -mode local|builder -repo DIR -url URL -commit C -output HOST \
//	  -signers FILE [-cache-url URL -cache-key KEY] -gcroot PATH
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/avalanche-fleet/avalanche/pkg/gitsync"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild"
	"github.com/avalanche-fleet/avalanche/pkg/release"
)

// spec is one deployment.
type spec struct {
	mode, repo, url, commit, output, signers, cacheURL, cacheKey, gcroot string
}

// report is what deploy-once prints: the system it got, its own peak RSS
// and the largest nix process it ran (KiB, from wait4).
type report struct {
	Out       string `json:"out"`
	HWM       int64  `json:"hwm"`
	NixMaxRSS int64  `json:"nixMaxRSS"`
}

func main() {
	var s spec
	flag.StringVar(&s.mode, "mode", "builder", "local (evaluate and build) or builder (find the release, substitute)")
	flag.StringVar(&s.repo, "repo", "", "the host's bare copy of the repository")
	flag.StringVar(&s.url, "url", "", "the repository URL")
	flag.StringVar(&s.commit, "commit", "", "main commit to deploy")
	flag.StringVar(&s.output, "output", "", "the host's nixosConfigurations output")
	flag.StringVar(&s.signers, "signers", "", "allowed_signers for commits and releases (principal builder)")
	flag.StringVar(&s.cacheURL, "cache-url", "", "binary cache URL")
	flag.StringVar(&s.cacheKey, "cache-key", "", "binary cache public key")
	flag.StringVar(&s.gcroot, "gcroot", "", "GC root for the system")
	flag.Parse()
	out, err := s.run(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "deploy-once:", err)
		os.Exit(1)
	}
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru)
	_ = json.NewEncoder(os.Stdout).Encode(report{Out: out, HWM: hwm(), NixMaxRSS: ru.Maxrss})
}

// run fetches and verifies the commit, then evaluates and builds it
// (local) or finds its release and substitutes it (builder).
func (s spec) run(ctx context.Context) (string, error) {
	repo := &gitsync.Repo{Dir: s.repo, Remote: gitsync.Remote{URL: s.url}, Branches: []string{"main", release.Branch}}
	if _, err := repo.Fetch(ctx); err != nil {
		return "", err
	}
	if _, err := repo.VerifyCommit(ctx, s.commit, gitsync.Signers{AllowedSignersFile: s.signers}); err != nil {
		return "", err
	}
	n := &rebuild.Nix{ExtraArgs: []string{"--option", "substituters", ""}}
	if s.mode == "local" {
		// A host evaluating locally still fetches what the builder built
		// from the fleet cache: only the evaluation differs.
		n.ExtraArgs = []string{"--option", "substituters", s.cacheURL, "--option", "trusted-public-keys", s.cacheKey}
		ev, err := n.Evaluate(ctx, rebuild.FlakeRef(s.repo, "main", s.commit), s.output)
		if err != nil {
			return "", err
		}
		return n.Build(ctx, ev, s.gcroot)
	}
	finder := release.Finder{RepoDir: s.repo, Verifier: release.AllowedSigners(s.signers, "builder")}
	found, err := finder.Find(ctx, s.commit)
	if err != nil {
		return "", err
	}
	h, err := found.For(s.commit, release.Self{Output: s.output, System: rebuild.System()})
	if err != nil {
		return "", err
	}
	key, err := rebuild.ParseCacheKey(s.cacheKey)
	if err != nil {
		return "", err
	}
	return n.Substitute(ctx, rebuild.Cache{URL: s.cacheURL, Keys: []rebuild.CacheKey{key}}, h.OutPath, s.gcroot, nil)
}

// hwm returns this process's peak RSS (VmHWM, KiB).
func hwm() int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return n
		}
	}
	return 0
}
