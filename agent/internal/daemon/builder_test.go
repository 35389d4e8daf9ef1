package daemon_test

// Builder mode at daemon level: the real builder role releases into a
// real binary cache, the host's store lacks the released system until it
// substitutes it, and every nix command the host runs is recorded.

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/avalanche-fleet/avalanche/agent/internal/daemon"
	"github.com/avalanche-fleet/avalanche/agent/internal/status"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
	"github.com/avalanche-fleet/avalanche/pkg/release"
)

// A commit deploys on a builder-mode host without a single evaluation or
// build there; an unchanged poll stays one request although the release
// branch is tracked too; a commit whose system did not change is up to
// date without substituting anything.
func TestBuilderModeDeploysWithoutEvaluating(t *testing.T) {
	h, fb := newBuilderHost(t, "30m", "evaluate", nil)
	first := fb.commit(h, "v1", "first")
	found := fb.release(t, first)
	out := found.Hosts[hostName].OutPath
	if storeValid(out) {
		t.Fatalf("%s is in the store before the host substitutes it", out)
	}
	rec := recordNix(t, h)
	var bytes atomic.Int64
	prev := h.setup
	h.setup = func(d *daemon.Daemon) { prev(d); d.Hooks.Substituted = func(n int64) { bytes.Add(n) } }
	h.start()

	s := h.status()
	dep := s.Deployed
	if dep == nil || dep.Commit != first || dep.StorePath != out || currentTarget(t, h.current) != out {
		t.Fatalf("deployed %+v, running %s; want %s with %s", dep, currentTarget(t, h.current), first, out)
	}
	if dep.Source != "builder" || dep.Release == nil || dep.Release.ID != found.ID || dep.Release.Builder != "cardinal" {
		t.Errorf("deployed source %q, release %+v; want builder, release %s by cardinal", dep.Source, dep.Release, found.ID)
	}
	if got := status.SourceWords(dep.Commit, dep.Source, dep.Fallback, dep.Release); got != "release of "+first[:12]+" from cardinal" {
		t.Errorf("source in words = %q", got)
	}
	calls := rec.Calls(t)
	if ev := nixtest.Evaluations(calls); len(ev) != 0 {
		t.Errorf("the host evaluated or built: %q", ev)
	}
	if n := len(substitutions(calls)); n != 1 {
		t.Errorf("the host ran %d substitutions; want 1: %q", n, calls)
	}
	if bytes.Load() <= 0 {
		t.Errorf("substituted bytes reported = %d; want the system's size", bytes.Load())
	}

	h.server.Reset()
	if r := h.sync(false); r.Result != "unchanged" {
		t.Errorf("sync with nothing new = %+v; want unchanged", r)
	}
	if reqs := h.server.Requests(); len(reqs) != 1 {
		t.Errorf("an unchanged poll made %d requests: %+v; want one ref advertisement", len(reqs), reqs)
	}

	rec.Reset(t)
	second := h.commit("docs only", map[string]string{"README.md": "the system does not change\n"})
	fb.release(t, second)
	if r := h.sync(false); r.Result != "up-to-date" || !r.OK {
		t.Fatalf("sync of a commit with the same system = %+v; want up-to-date", r)
	}
	if d := h.status().Deployed; d.Commit != second || d.StorePath != out {
		t.Errorf("deployed %+v; want %s, still %s", d, second, out)
	}
	if calls := rec.Calls(t); len(nixtest.Evaluations(calls)) != 0 || len(substitutions(calls)) != 0 {
		t.Errorf("an up-to-date commit ran %q; want no evaluation and no substitution", calls)
	}
}

// Builder late: the pass ends waiting (no flight), status says since when
// and what happens next; after deploy.builderTimeout the configured
// fallback applies.
func TestBuilderLate(t *testing.T) {
	t.Run("evaluate", func(t *testing.T) {
		h, fb, rec, second := waitingHost(t, "evaluate")
		if !strings.Contains(h.status().Waiting.Message, "evaluating locally in") {
			t.Errorf("waiting message = %q; want when it evaluates locally", h.status().Waiting.Message)
		}
		// No sync: the daemon looks again by itself when the fallback is due.
		s := waitDeployed(t, h, second)
		if d := s.Deployed; d.Source != "local" || !d.Fallback || d.Release != nil {
			t.Errorf("deployed %+v; want evaluated locally as the fallback", d)
		}
		if ev := nixtest.Evaluations(rec.Calls(t)); len(ev) == 0 {
			t.Errorf("the fallback deployed without evaluating")
		}
		if a := h.state().Awaiting; a != nil {
			t.Errorf("state.Awaiting = %+v after the deployment; want nil", a)
		}
		_ = fb
	})
	t.Run("wait", func(t *testing.T) {
		h, fb, rec, second := waitingHost(t, "wait")
		time.Sleep(2 * time.Second)
		if r := h.sync(false); r.Result != status.Waiting {
			t.Fatalf("sync after deploy.builderTimeout = %+v; want still waiting", r)
		}
		w := h.status().Waiting
		if w == nil || !strings.Contains(w.Message, "past deploy.builderTimeout (2s), still waiting (deploy.builderFallback = wait)") {
			t.Errorf("status.Waiting = %+v; want it to say it keeps waiting", w)
		}
		if ev := nixtest.Evaluations(rec.Calls(t)); len(ev) != 0 {
			t.Errorf("the host evaluated while waiting: %q", ev)
		}
		found := fb.release(t, second)
		if r := h.sync(false); r.Result != "deployed" {
			t.Fatalf("sync once the release is there = %+v; want deployed", r)
		}
		if d := h.status().Deployed; d.Release == nil || d.Release.ID != found.ID {
			t.Errorf("deployed %+v; want the release %s", d, found.ID)
		}
	})
}

// waitingHost deploys a first commit from the builder, then pushes a
// second that the builder does not release, with deploy.builderTimeout 2s.
func waitingHost(t *testing.T, fallback string) (*host, *fleetBuilder, *nixtest.Recorder, string) {
	h, fb := newBuilderHost(t, "2s", fallback, nil)
	fb.release(t, fb.commit(h, "v1", "first"))
	rec := recordNix(t, h)
	h.start()
	second := fb.commit(h, "v2", "second, not released")
	rec.Reset(t)
	start := time.Now()
	if r := h.sync(false); r.Result != status.Waiting || !r.OK {
		t.Fatalf("sync without a release = %+v; want waiting", r)
	}
	s := h.status()
	w := s.Waiting
	if s.State != status.Waiting || w == nil || w.Commit != second || s.Flight != nil {
		t.Fatalf("status: state %q, waiting %+v, flight %+v; want waiting for %s, no flight", s.State, w, s.Flight, second)
	}
	if want := "waiting for the builder's release of " + second[:12] + " since "; !strings.HasPrefix(w.Message, want) {
		t.Errorf("waiting message = %q; want it to start with %q", w.Message, want)
	}
	if w.Since.Before(start.Add(-time.Second)) || w.Since.After(time.Now()) || w.Timeout != 2*time.Second {
		t.Errorf("waiting since %s, timeout %s; want since the sync, 2s", w.Since, w.Timeout)
	}
	if a := h.state().Awaiting; a == nil || a.Commit != second {
		t.Errorf("state.Awaiting = %+v; want the wait for %s on disk", a, second)
	}
	if ev := nixtest.Evaluations(rec.Calls(t)); len(ev) != 0 {
		t.Errorf("the host evaluated while waiting: %q", ev)
	}
	return h, fb, rec, second
}

func waitDeployed(t *testing.T, h *host, commit string) status.Status {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if s := h.status(); s.Deployed != nil && s.Deployed.Commit == commit && s.State == status.Idle {
			return s
		}
	}
	t.Fatalf("%s was never deployed; status %+v", commit, h.status())
	return status.Status{}
}

// Builder down: status says so, from what the host sees: no release
// branch at all, a release branch that does not move while the host
// waits, a remote that cannot be fetched.
func TestBuilderDownShows(t *testing.T) {
	h, fb := newBuilderHost(t, "2s", "wait", nil)
	first := fb.commit(h, "v1", "first")
	h.start()
	down := func(want string) {
		t.Helper()
		w := h.status().Waiting
		if w == nil || !strings.Contains(w.BuilderDown, want) || !strings.Contains(w.Message, "the builder looks down: "+want) {
			t.Errorf("status.Waiting = %+v; want the builder down: %q", w, want)
		}
	}
	down("the remote has no " + release.Branch + " branch")

	fb.release(t, first)
	if r := h.sync(false); r.Result != "deployed" {
		t.Fatalf("sync once released = %+v", r)
	}
	second := fb.commit(h, "v2", "second")
	h.sync(false)
	if w := h.status().Waiting; w == nil || w.BuilderDown != "" {
		t.Errorf("status.Waiting = %+v; want a wait that just began, the builder not looking down", w)
	}
	time.Sleep(1100 * time.Millisecond) // half of deploy.builderTimeout
	down("its release branch has not moved for ")

	h.server.Close()
	if r := h.sync(false); r.OK {
		t.Fatalf("sync with the remote down = %+v; want a fetch failure", r)
	}
	down("the release branch cannot be fetched: ")
	if s := h.status(); s.Waiting.Commit != second {
		t.Errorf("waiting for %s; want %s", s.Waiting.Commit, second)
	}
}

// Rollback of a substituted system: its health check fails, the previous
// system (in the store, GC-rooted) returns, the commit is refused.
func TestBuilderModeRollback(t *testing.T) {
	h, fb := newBuilderHost(t, "30m", "evaluate", func(c map[string]any) {
		c["deploy"].(map[string]any)["healthChecks"] = []string{"! grep -q bad " + c["deploy"].(map[string]any)["currentSystem"].(string) + "/marker"}
	})
	good := fb.release(t, fb.commit(h, "v1", "first")).Hosts[hostName].OutPath
	rec := recordNix(t, h)
	h.start()
	second := fb.commit(h, "bad-v2", "second, unhealthy")
	bad := fb.release(t, second).Hosts[hostName].OutPath
	if r := h.sync(false); r.Result != "rolled-back" {
		t.Fatalf("sync of an unhealthy system = %+v; want rolled-back", r)
	}
	if cur := currentTarget(t, h.current); cur != good {
		t.Errorf("running %s; want the previous system %s back", cur, good)
	}
	st := h.state()
	if b := st.IsBad(second); b == nil || !strings.Contains(b.Reason, "not healthy") {
		t.Errorf("IsBad(%s) = %+v; want refused for its health check", second, b)
	}
	if h.countActivations("switch", bad) != 1 || h.countActivations("switch", good) != 2 {
		t.Errorf("activations %q; want the bad system once, then the good one again", h.activations())
	}
	if ev := nixtest.Evaluations(rec.Calls(t)); len(ev) != 0 {
		t.Errorf("the host evaluated or built: %q", ev)
	}
}

// A host stopped (SIGTERM), or killed with its nix children (SIGKILL, a
// crash or power cut), in the middle of a substitution deploys the commit
// after the restart, without sync --force: an interrupted substitution is
// no verdict, like an interrupted build.
func TestKillDuringSubstitution(t *testing.T) {
	t.Run("SIGTERM", func(t *testing.T) { interruptSubstitution(t, func(c *child) { c.stop(t) }) })
	t.Run("SIGKILL", func(t *testing.T) { interruptSubstitution(t, func(c *child) { c.killTree(t) }) })
}

func interruptSubstitution(t *testing.T, stop func(c *child)) {
	h, fb := newBuilderHost(t, "30m", "evaluate", nil)
	first := fb.commit(h, "v1", "first")
	out := fb.release(t, first).Hosts[hostName].OutPath
	fb.served.held.Store(true)
	c := h.startChild()
	fb.served.waitReached(t)
	if s := h.status(); s.Flight == nil || s.Flight.Step != "build" || s.Flight.Substitution == nil || s.Flight.Substitution.Paths == 0 {
		t.Errorf("status during the substitution: flight %+v; want the build step with its substitution", s.Flight)
	}
	stop(c)
	if b := h.state().IsBad(first); b != nil {
		t.Fatalf("IsBad(%s) = %+v after a kill; want no verdict", first, b)
	}
	fb.served.open()

	h.startChild()
	h.sync(false)
	st := h.checkSettled(first)
	if st.Deployed.StorePath != out || currentTarget(t, h.current) != out || st.IsBad(first) != nil {
		t.Errorf("deployed %+v, running %s, bad %+v; want %s", st.Deployed, currentTarget(t, h.current), st.IsBad(first), out)
	}
	var results []string
	for _, d := range st.History {
		results = append(results, d.Result)
	}
	if strings.Join(results, " ") != "interrupted deployed" {
		t.Errorf("history results %q; want the cut-short substitution, then the deployment", results)
	}
}

// A release the host must refuse: the trusted builder's release names no
// system of this host. The commit is refused with a clear error, and
// nothing changes on the host.
func TestBuilderModeRefusesRelease(t *testing.T) {
	h, fb := newBuilderHost(t, "30m", "evaluate", nil)
	good := fb.release(t, fb.commit(h, "v1", "first")).Hosts[hostName].OutPath
	rec := recordNix(t, h)
	h.start()
	gen := h.state().Deployed.Generation
	second := fb.commit(h, "v2", "second")
	fb.publish(t, release.Release{Commit: second, Builder: "cardinal",
		Hosts: map[string]release.Host{hostName: {System: nixtest.GoSystem(), OutPath: fakePath("nixos-system-otherhost")}}}, fb.b.Signer)
	const want = "is not this host's system"
	rec.Reset(t)
	r := h.sync(false)
	if r.OK || !strings.Contains(r.Error, want) {
		t.Fatalf("sync = %+v; want refused: %q", r, want)
	}
	t.Logf("message: %s", r.Error)
	st := h.state()
	if b := st.IsBad(second); b == nil || !strings.Contains(b.Reason, want) {
		t.Errorf("IsBad(%s) = %+v; want refused", second, b)
	}
	if cur := currentTarget(t, h.current); cur != good || st.Deployed.Generation != gen {
		t.Errorf("running %s, generation %d; want %s and %d unchanged", cur, st.Deployed.Generation, good, gen)
	}
	if subs := substitutions(rec.Calls(t)); len(subs) != 0 {
		t.Errorf("the refused release was realised: %q", subs)
	}
	if r := h.sync(false); r.Result != "refused" {
		t.Errorf("the next sync = %+v; want the commit refused, not retried", r)
	}
}

// Trouble that is not the commit's never refuses it: a release nobody
// trusted pushed before the builder's is ignored and waited past (status
// says why); a cache that lost a path or serves a narinfo no trusted key
// signed is retried, the status saying it is the cache's trouble. Once
// the builder's release lands or the cache is mended, the commit deploys
// without sync --force.
func TestBuilderModeWaitsPastOthersTrouble(t *testing.T) {
	tests := []struct {
		name string
		// make breaks something for commit and returns how to mend it.
		make func(t *testing.T, fb *fleetBuilder, commit string) (mend func())
		// result and want are the sync result and a fragment of its error
		// or of the waiting message.
		result, want string
	}{
		{"release by an unknown key first", func(t *testing.T, fb *fleetBuilder, commit string) func() {
			fb.publish(t, release.Release{Commit: commit, Builder: "cardinal",
				Hosts: map[string]release.Host{hostName: {System: nixtest.GoSystem(), OutPath: fakePath("nixos-system-" + hostName)}}}, fb.other)
			return func() { fb.release(t, commit) }
		}, status.Waiting, "not trusted: release not signed by a trusted builder"},
		{"cache missing a path", func(t *testing.T, fb *fleetBuilder, commit string) func() {
			narinfo := fb.cache.NarinfoFile(fb.release(t, commit).Hosts[hostName].OutPath)
			return hide(t, narinfo)
		}, "failed", "the cache's trouble, not the commit's (retried)"},
		{"narinfo signed by an untrusted key", func(t *testing.T, fb *fleetBuilder, commit string) func() {
			narinfo := fb.cache.NarinfoFile(fb.release(t, commit).Hosts[hostName].OutPath)
			orig, err := os.ReadFile(narinfo)
			if err != nil {
				t.Fatal(err)
			}
			tamper(t, narinfo)
			return func() { writeTestFile(t, narinfo, string(orig)) }
		}, "failed", "not signed by a trusted cache key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, fb := newBuilderHost(t, "30m", "wait", nil)
			good := fb.release(t, fb.commit(h, "v1", "first")).Hosts[hostName].OutPath
			h.start()
			second := fb.commit(h, "v2", "second")
			mend := tt.make(t, fb, second)
			for range 2 { // and again: nothing was decided the first time
				r := h.sync(false)
				s := h.status()
				msg := r.Error
				if s.Waiting != nil {
					msg = s.Waiting.Message
				}
				if r.Result != tt.result || !strings.Contains(msg, tt.want) {
					t.Fatalf("sync = %+v, waiting %+v; want %s saying %q", r, s.Waiting, tt.result, tt.want)
				}
				t.Logf("message: %s", msg)
				if b := h.state().IsBad(second); b != nil {
					t.Fatalf("IsBad(%s) = %+v; want no verdict", second, b)
				}
				if cur := currentTarget(t, h.current); cur != good {
					t.Fatalf("running %s; want %s unchanged", cur, good)
				}
			}
			mend()
			if r := h.sync(false); r.Result != "deployed" {
				t.Fatalf("sync once mended = %+v; want deployed", r)
			}
		})
	}
}

// A release nobody trusted does not stop deploy.builderFallback: after
// deploy.builderTimeout the host evaluates locally.
func TestUntrustedReleaseFallsBack(t *testing.T) {
	h, fb := newBuilderHost(t, "2s", "evaluate", nil)
	fb.release(t, fb.commit(h, "v1", "first"))
	h.start()
	second := fb.commit(h, "v2", "second")
	fb.publish(t, release.Release{Commit: second, Builder: "cardinal",
		Hosts: map[string]release.Host{hostName: {System: nixtest.GoSystem(), OutPath: fakePath("nixos-system-" + hostName)}}}, fb.other)
	if r := h.sync(false); r.Result != status.Waiting {
		t.Fatalf("sync with an untrusted release = %+v; want waiting", r)
	}
	s := waitDeployed(t, h, second)
	if d := s.Deployed; d.Source != "local" || !d.Fallback {
		t.Errorf("deployed %+v; want evaluated locally as the fallback", d)
	}
}

// hide moves a file away and returns how to put it back.
func hide(t *testing.T, p string) func() {
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

// fakePath is a store path named name that no store has.
func fakePath(name string) string {
	return "/nix/store/" + strings.Repeat("0", 32) + "-" + name
}

// tamper changes the NAR size a narinfo states, which its signature covers.
func tamper(t *testing.T, narinfo string) {
	t.Helper()
	b, err := os.ReadFile(narinfo)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^NarSize: (\d+)$`)
	m := re.FindSubmatch(b)
	if m == nil {
		t.Fatalf("%s has no NarSize", narinfo)
	}
	n, _ := strconv.Atoi(string(m[1]))
	writeTestFile(t, narinfo, re.ReplaceAllString(string(b), "NarSize: "+strconv.Itoa(n+1)))
}
