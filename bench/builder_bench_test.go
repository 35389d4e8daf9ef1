package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/pkg/gitsync"
	"github.com/avalanche-fleet/avalanche/pkg/gitsync/gittest"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
	"github.com/avalanche-fleet/avalanche/pkg/release"
)

// The benchmark host evaluates like a NixOS system: an attribute set of
// evalWork entries makes nix eval peak near 700 MB; and its closure has
// closureDeps built paths of 64 KiB besides the toplevel, kernel, initrd
// and modules (a NixOS closure has 1,000-2,000 paths). Both ways fetch
// them from the cache; only the evaluation differs.
const (
	evalWork    = 1_000_000
	closureDeps = 1000
)

// deployReport is what deploy-once prints.
type deployReport struct {
	Out string `json:"out"`
	// HWM is deploy-once's own peak RSS (KiB); NixMaxRSS the largest nix
	// process it ran (KiB, from wait4).
	HWM       int64 `json:"hwm"`
	NixMaxRSS int64 `json:"nixMaxRSS"`
}

// BenchmarkBuilderMode measures the host side of one deployment of the
// same commit both ways: evaluating and building locally, and in builder
// mode (find the release, substitute from the cache). The host's store
// lacks the system each time. Each deployment runs bench/cmd/deploy-once,
// an agent-sized binary that fetches, verifies, then evaluates and builds
// or resolves and substitutes, like the agent; its whole process tree is
// sampled from /proc every 10 ms for peak RSS, and wait4 gives the tree's
// CPU time.
func BenchmarkBuilderMode(b *testing.B) {
	f := newReleasedFleet(b)
	var local, built deployResult
	for range b.N {
		local = f.deploy(b, "local")
		built = f.deploy(b, "builder")
	}
	mb := func(n int64) float64 { return float64(n) / (1 << 20) }
	b.ReportMetric(mb(local.Peak), "local-peak-MiB")
	b.ReportMetric(mb(built.Peak), "builder-peak-MiB")
	b.ReportMetric(float64(built.Peak)/float64(local.Peak), "peak-ratio")
	b.ReportMetric(local.CPU.Seconds(), "local-CPU-s")
	b.ReportMetric(built.CPU.Seconds(), "builder-CPU-s")
	b.ReportMetric(local.Wall.Seconds(), "local-wall-s")
	b.ReportMetric(built.Wall.Seconds(), "builder-wall-s")
	b.ReportMetric(float64(local.NixMaxRSS)/1024, "local-nix-max-MiB")
	b.ReportMetric(float64(built.NixMaxRSS)/1024, "builder-nix-max-MiB")
	b.ReportMetric(float64(built.HWM)/1024, "builder-agent-MiB")
}

// releasedFleet is a repository whose one host evaluates heavily, built
// and released by a builder into a binary cache served over HTTP.
type releasedFleet struct {
	server         *gittest.HTTPServer
	cache          *nixtest.Cache
	cacheURL       string
	signers        string
	commit         string
	rel            release.Release
	builderGCRoots string
}

func newReleasedFleet(b *testing.B) *releasedFleet {
	nixtest.Require(b)
	ctx := context.Background()
	f := &releasedFleet{cache: nixtest.NewCache(b, "bench-cache-1")}
	f.cacheURL = f.cache.Serve(b).URL
	keys := b.TempDir()
	aliceKey, alicePub := gittest.NewSSHKey(b, keys, "alice")
	releaseKey, builderPub := gittest.NewSSHKey(b, keys, "builder")
	f.signers = filepath.Join(keys, "allowed_signers")
	if err := os.WriteFile(f.signers, []byte(gittest.AllowedSigner("alice", alicePub)+"\n"+
		`builder namespaces="`+release.Namespace+`" `+builderPub+"\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	work, bare := gittest.NewRepo(b), gittest.NewBare(b)
	work.Git(b, "-C", bare, "config", "http.receivepack", "true")
	f.server = gittest.StartHTTPServer(b, bare, "")
	m := fmt.Sprintf("bench %d", time.Now().UnixNano())
	host := nixtest.FlakeOptions{Name: hostName, Marker: m, Kernel: "kernel " + m, Initrd: "initrd " + m,
		KernelModules: "modules " + m, EvalWork: evalWork, Deps: closureDeps}
	if err := nixtest.WriteFleet(work.Dir, []nixtest.FlakeOptions{host}); err != nil {
		b.Fatal(err)
	}
	f.commit = work.CommitSSHSigned(b, nil, "heavy fleet", aliceKey)
	work.Push(b, bare, "HEAD:refs/heads/main")

	repo := &gitsync.Repo{Dir: filepath.Join(b.TempDir(), "repo.git"), Remote: gitsync.Remote{URL: f.server.URL},
		Branches: []string{"main", release.Branch}}
	if _, err := repo.Fetch(ctx); err != nil {
		b.Fatal(err)
	}
	f.rel = f.release(b, repo, releaseKey)
	return f
}

// release evaluates, builds, signs and copies the host's system and
// publishes the release, as the builder role does.
func (f *releasedFleet) release(b *testing.B, repo *gitsync.Repo, releaseKey string) release.Release {
	ctx := context.Background()
	n := &rebuild.Nix{ExtraArgs: nixtest.Args(), Env: nixtest.Env(b)}
	ev, err := n.EvaluateHost(ctx, rebuild.FlakeRef(repo.Dir, "main", f.commit), hostName)
	if err != nil {
		b.Fatal(err)
	}
	f.builderGCRoots = b.TempDir()
	out, err := n.Build(ctx, ev.Evaluation, filepath.Join(f.builderGCRoots, hostName))
	if err != nil {
		b.Fatal(err)
	}
	if err := n.Sign(ctx, f.cache.SecretKeyFile, out); err != nil {
		b.Fatal(err)
	}
	if err := n.Copy(ctx, f.cache.URL, out); err != nil {
		b.Fatal(err)
	}
	signer, err := release.LoadSigner(releaseKey)
	if err != nil {
		b.Fatal(err)
	}
	rel := release.Release{Commit: f.commit, Builder: "bench-builder", Time: time.Now(),
		Hosts: map[string]release.Host{hostName: {System: ev.System, DrvPath: ev.DrvPath, OutPath: out}}}
	old, id, err := release.Commit(repo.Dir, "", rel, signer)
	if err == nil {
		err = repo.Push(ctx, release.Branch, old, id)
	}
	if err != nil {
		b.Fatal(err)
	}
	return rel
}

// deployResult is one measured deployment.
type deployResult struct {
	deployReport
	Peak      int64 // bytes, whole process tree
	CPU, Wall time.Duration
}

// deploy evicts the host's system from the store and deploys it in a child.
func (f *releasedFleet) deploy(b *testing.B, mode string) deployResult {
	f.evict(b)
	dir := b.TempDir()
	gcroot := filepath.Join(dir, "gcroots", "system")
	cmd := exec.Command(deployOnce(b), "-mode", mode, "-repo", filepath.Join(dir, "repo.git"), "-url", f.server.URL,
		"-commit", f.commit, "-output", hostName, "-signers", f.signers, "-cache-url", f.cacheURL,
		"-cache-key", f.cache.PublicKey, "-gcroot", gcroot)
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+filepath.Join(dir, "cache"))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	sampler := sampleTree(cmd.Process.Pid, 10*time.Millisecond)
	var rep deployReport
	decodeErr := json.NewDecoder(stdout).Decode(&rep)
	err = cmd.Wait()
	res := deployResult{deployReport: rep, Peak: sampler.Stop(), Wall: time.Since(start)}
	if err != nil || decodeErr != nil || rep.Out != f.rel.Hosts[hostName].OutPath {
		b.Fatalf("%s deployment: %v, %v, out %q; want %s", mode, err, decodeErr, rep.Out, f.rel.Hosts[hostName].OutPath)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	res.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	if err := os.Remove(gcroot); err != nil {
		b.Fatal(err)
	}
	return res
}

// evict deletes the host's system, its derivation and everything they
// need from the store, so that each deployment starts without them.
func (f *releasedFleet) evict(b *testing.B) {
	if err := os.RemoveAll(f.builderGCRoots); err != nil {
		b.Fatal(err)
	}
	h := f.rel.Hosts[hostName]
	var paths []string
	for _, p := range []string{h.DrvPath, h.OutPath} {
		if _, err := os.Stat(p); err == nil {
			paths = append(paths, nixtest.Closure(b, p)...)
		}
	}
	if len(paths) > 0 {
		nixtest.DeleteFromStore(b, paths...)
	}
}

// deployOnce builds bench/cmd/deploy-once next to the agent binaries.
func deployOnce(b *testing.B) string {
	bin := filepath.Join(filepath.Dir(agentBinary(b)), "deploy-once")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/deploy-once").CombinedOutput(); err != nil {
		b.Fatalf("go build ./cmd/deploy-once: %v\n%s", err, out)
	}
	return bin
}
