package bench

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestReliabilityKillDuringDeploys SIGKILLs the agent (and everything it
// runs) at random points of deploy passes, restarts it, and checks after
// every restart: the state file decodes, nothing is left pending, the host
// runs what the state says, no system was switched to twice in a row, and
// the secrets link points at a complete generation holding the deployed
// commit's value. 10 kill points here; 100 with AVALANCHE_BENCH_FULL=1.
func TestReliabilityKillDuringDeploys(t *testing.T) {
	kills := 10
	if fullRun() {
		kills = 100
	}
	h := newHost(t, hostOptions{secrets: true})
	values := map[string]string{}
	commit := func(i int) string {
		h.opts.Marker = fmt.Sprintf("v%d", i)
		v := fmt.Sprintf("value-%d", i)
		c := h.commit(fmt.Sprintf("commit %d", i), v)
		values[c] = v
		return c
	}
	commit(0)
	h.start()
	h.settle(1, 2*time.Minute)
	commit(1)
	start := time.Now()
	if r := h.sync(); r.Result != "deployed" {
		t.Fatalf("sync = %+v; want deployed\n%s", r, h.logTail())
	}
	pass := time.Since(start)
	t.Logf("one deploy pass takes %v; killing at random points within it", pass)
	outcomes := map[string]int{}
	for i := 2; i < kills+2; i++ {
		commit(i)
		h.trigger()
		at := time.Duration(rand.Int64N(int64(pass + pass/5)))
		time.Sleep(at)
		phase := h.mustStatusOr("dead").State
		h.kill()
		if _, err := h.readState(); err != nil {
			t.Fatalf("kill %d (%v, %s): state.json after the kill: %v", i, at, phase, err)
		}
		h.start()
		s := h.settle(1, 2*time.Minute)
		outcomes[phase+"→"+resultOf(s)]++
		h.checkConsistent(t, fmt.Sprintf("kill %d (%v into the pass, %s)", i, at, phase), s, values)
	}
	t.Logf("kill points (phase at the kill → what the restart found): %v", outcomes)
	t.Logf("activations: %d, of which rollbacks to the system that was still running: %d", len(h.activations()), h.redundantSwitches)
}

func resultOf(s agentStatus) string {
	if s.Deployed == nil {
		return "nothing deployed"
	}
	return s.Deployed.Result
}

// mustStatusOr returns the status, or one whose State is fallback when the
// agent does not answer.
func (h *host) mustStatusOr(fallback string) agentStatus {
	s, err := h.status()
	if err != nil {
		s.State = fallback
	}
	return s
}

// checkConsistent checks the invariants that must hold once a restarted
// agent has settled.
func (h *host) checkConsistent(t *testing.T, what string, s agentStatus, values map[string]string) {
	t.Helper()
	st, err := h.readState()
	if err != nil {
		t.Fatalf("%s: state.json: %v", what, err)
	}
	if s.Pending != nil || st.Pending != nil {
		t.Errorf("%s: pending after the restart: status %+v, state %+v", what, s.Pending, st.Pending)
	}
	if st.Deployed == nil {
		t.Fatalf("%s: nothing deployed in state.json\n%s", what, h.logTail())
	}
	if cur := resolve(h.opts.CurrentSystemLink); cur != st.Deployed.StorePath {
		t.Errorf("%s: current system %s; state says %s (%s)", what, cur, st.Deployed.StorePath, st.Deployed.Result)
	}
	// A rollback after a switch that was killed before it ran switches to
	// the system that never stopped running: allowed, once per rollback.
	acts, rollbacks := h.activations(), h.countInLog("rolled back")
	dups := 0
	for j := max(1, h.checkedActs); j < len(acts); j++ {
		if acts[j] == acts[j-1] {
			dups++
			// The re-activated system is the one before the interrupted
			// flight; since a kill is no verdict, the commit may have been
			// deployed again by the time this check runs.
			if dups > rollbacks-h.checkedRollbacks {
				t.Errorf("%s: duplicate activation %q at line %d of the activation log; agent log:\n%s", what, acts[j], j+1, h.logTail())
			}
		}
	}
	h.redundantSwitches += dups
	h.checkedActs, h.checkedRollbacks = len(acts), rollbacks
	link, err := os.Readlink(h.secretsLink())
	if err != nil {
		t.Fatalf("%s: secrets link: %v", what, err)
	}
	got, err := os.ReadFile(filepath.Join(link, "token"))
	if want := values[st.Deployed.Commit]; err != nil || string(got) != want {
		t.Errorf("%s: secrets link %s holds token %q, %v; want %q, the value of deployed %s", what, link, got, err, want, st.Deployed.Commit)
	}
	gens, _ := os.ReadDir(h.secretsRoot())
	for _, g := range gens {
		if strings.HasPrefix(g.Name(), ".tmp-") {
			continue // never linked; removed by the next install
		}
		if _, err := os.Stat(filepath.Join(h.secretsRoot(), g.Name(), "token")); err != nil {
			t.Errorf("%s: generation %s is incomplete: %v", what, g.Name(), err)
		}
	}
}

// TestReliabilityThousandSyncs sends 1,000 concurrent sync --wait requests
// within a second: they must make exactly one pass, and every caller must
// get that pass's result.
func TestReliabilityThousandSyncs(t *testing.T) {
	h := newHost(t, hostOptions{})
	h.commit("first", "")
	h.start()
	before := h.settle(1, 2*time.Minute).Passes
	hc := h.httpClient()
	var wg sync.WaitGroup
	results := make([]syncResult, 1000)
	errs := make([]error, 1000)
	start := time.Now()
	var sent time.Duration
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := hc.Post("http://agent/v1/sync?wait=1", "", nil)
			if err != nil {
				errs[i] = err
				return
			}
			defer resp.Body.Close()
			errs[i] = decodeJSON(resp.Body, &results[i])
		}()
	}
	sent = time.Since(start)
	wg.Wait()
	elapsed := time.Since(start)
	time.Sleep(1500 * time.Millisecond) // a second pass would start by now
	after := h.settle(before+1, time.Minute).Passes
	passes := map[uint64]int{}
	for i, r := range results {
		if errs[i] != nil {
			t.Fatalf("request %d: %v", i, errs[i])
		}
		passes[r.Pass]++
	}
	t.Logf("1000 requests started in %v, all answered after %v; passes %d → %d; answers by pass %v", sent, elapsed, before, after, passes)
	if elapsed > 3*time.Second {
		t.Errorf("1000 syncs took %v to answer", elapsed)
	}
	if after != before+1 || len(passes) != 1 {
		t.Errorf("1000 syncs made passes %d → %d, answered from passes %v; want exactly one pass", before, after, passes)
	}
}

// TestReliabilityCorruptRepository damages the agent's bare repository
// while it is stopped: the next start must re-clone and deploy.
func TestReliabilityCorruptRepository(t *testing.T) {
	h := newHost(t, hostOptions{})
	h.commit("first", "")
	h.start()
	h.settle(1, 2*time.Minute)
	h.stop()
	clones := h.countInLog("recloned=true") // the first clone counts as one
	repo := filepath.Join(h.stateDir(), "repo.git")
	packs, _ := filepath.Glob(filepath.Join(repo, "objects", "pack", "*.pack"))
	for _, p := range packs {
		os.Truncate(p, 100)
	}
	os.WriteFile(filepath.Join(repo, "HEAD"), []byte("\x00garbage"), 0o644)
	h.opts.Marker = "v1"
	second := h.commit("second", "")
	h.start()
	s := h.settle(1, 2*time.Minute)
	if s.Deployed == nil || s.Deployed.Commit != second || s.Deployed.Result != "deployed" {
		t.Fatalf("after corrupting the repository: deployed %+v, error %q; want %s deployed\n%s", s.Deployed, s.LastError, second, h.logTail())
	}
	if n := h.countInLog("recloned=true") - clones; n != 1 {
		t.Errorf("the restarted agent logged recloned=true %d times; want 1\n%s", n, h.logTail())
	}
}
