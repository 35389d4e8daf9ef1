package daemon_test

import (
	"context"
	"sync"
	"testing"

	"github.com/avalanche-fleet/avalanche/agent/internal/daemon"
	"github.com/avalanche-fleet/avalanche/agent/internal/rollout"
	"github.com/avalanche-fleet/avalanche/pkg/rebuild/nixtest"
)

// heldGate holds every commit, recording what it was asked.
type heldGate struct {
	mu    sync.Mutex
	asked []string
	last  *rollout.Decision
}

func (g *heldGate) Check(_ context.Context, commit string) (rollout.Decision, bool, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.asked = append(g.asked, commit)
	d := rollout.Decision{Commit: commit, Wave: 1, Verdict: rollout.Waiting, Reason: "not yet deployed on canary"}
	g.last = &d
	return d, true, nil
}

func (g *heldGate) Last() *rollout.Decision {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.last
}

var _ daemon.Gate = (*heldGate)(nil)

// TestGateHoldsMainOnly: a held main commit is not deployed (no
// activation, no verdict, status says why); a testing branch on top of it
// is deployed all the same, without asking the gate.
func TestGateHoldsMainOnly(t *testing.T) {
	h := newHost(t, nil)
	gate := &heldGate{}
	h.setup = func(d *daemon.Daemon) { d.Gate = gate }
	main := h.commit("main", nil)
	h.start()

	s := h.status()
	if s.Deployed != nil || len(h.activations()) != 0 || s.Rollout == nil || s.Rollout.Verdict != rollout.Waiting || s.State != "waiting" {
		t.Fatalf("held main: deployed %+v, activations %q, state %s, rollout %+v; want nothing activated, waiting at the gate",
			s.Deployed, h.activations(), s.State, s.Rollout)
	}
	if r := h.sync(false); r.Result != "gated" || !r.OK {
		t.Errorf("sync while held = %+v; want gated, no error", r)
	}
	if st := h.state(); st != nil && (st.LastError != nil || st.IsBad(main) != nil) {
		t.Errorf("state after holding: last error %+v, bad %+v; want no verdict", st.LastError, st.IsBad(main))
	}

	h.opts.Marker = "testing"
	if err := nixtest.WriteFlake(h.up.Work, h.opts); err != nil {
		t.Fatal(err)
	}
	gitRun(t, h.up.Work, "commit", "--quiet", "-am", "on testing")
	tb := gitPush(t, h, "HEAD:refs/heads/testing/"+hostName)
	if r := h.sync(false); r.Result != "deployed" || h.status().Deployed.Commit != tb {
		t.Fatalf("sync with a testing branch = %+v, deployed %+v; want %s deployed (a testing branch is not gated)", r, h.status().Deployed, tb)
	}
	for _, c := range gate.asked {
		if c == tb {
			t.Errorf("the gate was asked about the testing branch's %s", tb)
		}
	}
}
