package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/pkg/gitsync"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
	"github.com/avalanche-fleet/avalanche/pkg/release"
)

// builderPhaseWork is about how long each phase's work takes; an injection
// lands at a uniform instant within the failpoint delay plus this.
var builderPhaseWork = map[string]time.Duration{
	"evaluate": 20 * time.Millisecond, "build": 400 * time.Millisecond, "builder-evaluate": 300 * time.Millisecond,
	"builder-sign": 100 * time.Millisecond, "builder-copy": 300 * time.Millisecond, "builder-publish": 100 * time.Millisecond,
}

// inject aims signal at phase: of the host (evaluate: the release lookup;
// build: the substitution) or of the builder (builder-*), restarts the
// agent it hit and checks the invariants once both settled.
func (r *builderRun) inject(t *testing.T, phase, signal string) {
	what := fmt.Sprintf("injection %d (%s during %s)", r.total()+1, signal, phase)
	defer logTime(t, what, time.Now())
	r.next(t)
	a := r.h
	if strings.HasPrefix(phase, "builder-") {
		a = r.b
	} else {
		r.release(t)
	}
	runLog := &crashRun{h: a}
	from := runLog.logSize()
	a.trigger()
	runLog.waitFailpoint(t, what, phase, from)
	time.Sleep(time.Duration(rand.Int64N(int64(failpointDelay + builderPhaseWork[phase]))))
	landed := runLog.lastFailpoint(from)
	kill(a, signal)
	r.counts[[2]string{phase, signal}]++
	r.landed[[2]string{landed, signal}]++
	r.checkCache(what + ", before the restart")
	a.start()
	if a == r.b {
		r.release(t)
	}
	r.deployHost(t, what)
}

// fault injects one infrastructure fault around a new commit, checks that
// the host decided nothing, mends it and checks the commit deploys.
func (r *builderRun) fault(t *testing.T, f string) {
	n := 1
	for _, c := range r.faults {
		n += c
	}
	what := fmt.Sprintf("fault %d (%s)", n, f)
	r.faults[f]++
	defer logTime(t, what, time.Now())
	r.next(t)
	var mend func()
	wantResult := "failed"
	switch f {
	case "cache down":
		r.release(t)
		r.down.Store(true)
		mend = func() { r.down.Store(false) }
	case "cache missing a path":
		r.release(t)
		mend = hideFile(t, r.cache.NarinfoFile(r.released(r.head)))
	case "narinfo signed by an untrusted key":
		r.release(t)
		mend = r.resignForeign(t, r.released(r.head))
	case "untrusted release first":
		r.b.stop()
		r.publishForeign(t)
		wantResult = "waiting"
		mend = func() { r.b.start(); r.release(t) }
	case "release branch force-pushed":
		r.release(t)
		nixtest.Git(t, r.h.up.Bare, "update-ref", "refs/heads/"+release.Branch, "refs/heads/"+release.Branch+"~1")
		wantResult = "waiting"
		mend = func() { r.release(t) }
	}
	for range 2 {
		res := r.h.sync()
		if res.Result != wantResult {
			r.violations = append(r.violations, fmt.Sprintf("%s: sync = %+v; want %s", what, res, wantResult))
		}
		r.checkNoVerdict(what, r.h)
	}
	mend()
	r.deployHost(t, what)
}

// resignForeign signs out's narinfo in the cache with a key nobody trusts
// and drops the trusted signature, and returns how to put it back.
func (r *builderRun) resignForeign(t *testing.T, out string) func() {
	t.Helper()
	narinfo := r.cache.NarinfoFile(out)
	orig, err := os.ReadFile(narinfo)
	if err != nil {
		t.Fatal(err)
	}
	other := nixtest.NewCache(t, "intruder-1")
	if b, err := exec.Command("nix", "--extra-experimental-features", "nix-command", "store", "sign", "--store", r.cache.URL,
		"--key-file", other.SecretKeyFile, out).CombinedOutput(); err != nil {
		t.Fatalf("nix store sign: %v\n%s", err, b)
	}
	b, _ := os.ReadFile(narinfo)
	var kept []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, "Sig: fleet-cache-1:") {
			kept = append(kept, l)
		}
	}
	if !strings.Contains(string(b), "Sig: intruder-1:") {
		t.Fatalf("the narinfo of %s carries no intruder signature:\n%s", out, b)
	}
	writeFile(t, narinfo, strings.Join(kept, "\n"))
	return func() { writeFile(t, narinfo, string(orig)) }
}

// publishForeign publishes a release of the head signed by a key nobody
// trusts, naming a system that no cache has.
func (r *builderRun) publishForeign(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	s, err := release.LoadSigner(r.foreign)
	if err != nil {
		t.Fatal(err)
	}
	repo := &gitsync.Repo{Dir: filepath.Join(t.TempDir(), "repo.git"), Remote: gitsync.Remote{URL: r.h.server.URL},
		Branches: []string{"main", release.Branch}}
	if _, err := repo.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	rel := release.Release{Commit: r.head, Builder: builderName, Time: time.Now(), Hosts: map[string]release.Host{
		hostName: {System: nixtest.GoSystem(), OutPath: "/nix/store/" + strings.Repeat("0", 32) + "-nixos-system-" + hostName}}}
	old, id, err := release.Commit(repo.Dir, "", rel, s)
	if err == nil {
		err = repo.Push(ctx, release.Branch, old, id)
	}
	if err != nil {
		t.Fatalf("publishing a foreign release: %v", err)
	}
}

func hideFile(t *testing.T, p string) func() {
	t.Helper()
	if err := os.Rename(p, p+".hidden"); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := os.Rename(p+".hidden", p); err != nil {
			t.Fatal(err)
		}
	}
}

// check records what does not hold once both agents settled on the head.
func (r *builderRun) check(what string) {
	r.checkCache(what)
	for _, a := range []*host{r.h, r.b} {
		r.checkNoVerdict(what, a)
		st, err := (&crashRun{h: a}).readState()
		if err != nil {
			r.violations = append(r.violations, fmt.Sprintf("%s: %s's state: %v", what, a.cfg["hostname"], err))
			continue
		}
		if running := resolve(a.opts.CurrentSystemLink); st.Deployed == nil || st.Deployed.Commit != r.head || st.Deployed.StorePath != running {
			r.violations = append(r.violations, fmt.Sprintf("%s: %s's state names %+v; it runs %s, the head is %s",
				what, a.cfg["hostname"], st.Deployed, running, short(r.head)))
		}
	}
	if got, want := resolve(r.h.opts.CurrentSystemLink), r.released(r.head); got != want {
		r.violations = append(r.violations, fmt.Sprintf("%s: the host runs %s; the release names %s", what, got, want))
	}
}

// checkNoVerdict: no commit is ever refused in this suite.
func (r *builderRun) checkNoVerdict(what string, a *host) {
	st, err := (&crashRun{h: a}).readState()
	if err == nil && len(st.Bad) > 0 {
		r.violations = append(r.violations, fmt.Sprintf("%s: %s refused %+v", what, a.cfg["hostname"], st.Bad))
	}
}

// checkCache: every release on the branch names, for every host, a
// closure the cache holds completely (each narinfo and its NAR file).
func (r *builderRun) checkCache(what string) {
	for _, rel := range r.releases() {
		for name, h := range rel.Hosts {
			if h.OutPath == "" || strings.Contains(h.OutPath, strings.Repeat("0", 32)) {
				continue // no system, or the foreign release's fake path
			}
			if err := r.cacheHolds(h.OutPath); err != nil {
				r.violations = append(r.violations, fmt.Sprintf("%s: the release of %s names %s for %s: %v",
					what, short(rel.Commit), h.OutPath, name, err))
			}
		}
	}
}

// cacheHolds walks the closure of out through the cache's narinfo files.
func (r *builderRun) cacheHolds(out string) error {
	seen := map[string]bool{}
	for todo := []string{filepath.Base(out)}; len(todo) > 0; {
		base := todo[0]
		todo = todo[1:]
		if seen[base] {
			continue
		}
		seen[base] = true
		b, err := os.ReadFile(r.cache.NarinfoFile("/nix/store/" + base))
		if err != nil {
			return fmt.Errorf("%s: %w", base, err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(l, ": ")
			switch k {
			case "URL":
				if _, err := os.Stat(filepath.Join(r.cache.Dir, v)); err != nil {
					return fmt.Errorf("%s: its NAR: %w", base, err)
				}
			case "References":
				todo = append(todo, strings.Fields(v)...)
			}
		}
	}
	return nil
}

func (r *builderRun) total() int {
	n := 0
	for _, c := range r.counts {
		n += c
	}
	return n
}

// report logs the counts per phase and signal and fails on any violated
// invariant.
func (r *builderRun) report(t *testing.T) {
	var b strings.Builder
	fmt.Fprintf(&b, "| phase | %s | landed in phase (%s) |\n|---|---|---|---|---|\n", strings.Join(crashSignals, " | "), strings.Join(crashSignals, " / "))
	for _, p := range builderCrashPhases {
		fmt.Fprintf(&b, "| %s |", p)
		var landed []string
		for _, s := range crashSignals {
			fmt.Fprintf(&b, " %d |", r.counts[[2]string{p, s}])
			landed = append(landed, fmt.Sprint(r.landed[[2]string{p, s}]))
		}
		fmt.Fprintf(&b, " %s |\n", strings.Join(landed, " / "))
	}
	faults, _ := json.Marshal(r.faults)
	t.Logf("%d injections, faults %s, %d violated invariants\n%s", r.total(), faults, len(r.violations), b.String())
	for i, v := range r.violations {
		if i == 20 {
			t.Errorf("… and %d more", len(r.violations)-20)
			break
		}
		t.Error(v)
	}
}

// gitOut runs git in the bare repository dir and returns its output.
func gitOut(dir string, args ...string) (string, error) {
	out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).Output()
	return strings.TrimSpace(string(out)), err
}

func logTime(t *testing.T, what string, start time.Time) {
	t.Logf("%s: %s", what, time.Since(start).Round(10*time.Millisecond))
}
